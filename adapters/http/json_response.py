"""The API's JSON response: orjson renders it (several times faster than the json module on
the per-call answers); what orjson refuses falls back to Starlette's own rendering."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSON

__all__ = ["JSONResponse"]


class JSONResponse(_StarletteJSON):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # integers beyond 64 bits, non-string keys
            return super().render(content)
