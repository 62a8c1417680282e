"""Real services for tests: skip when missing, fail when CI requires them."""

from __future__ import annotations

import os

import pytest

__all__ = ["service_missing", "PG_DSN", "REDIS_URL"]

PG_DSN = os.environ.get("JITGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("JITGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def service_missing(what: str) -> None:
    """Skip when a real service is missing, or fail when CI requires every service."""
    if os.environ.get("JITGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service missing: {what}")
