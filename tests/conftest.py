import os

import pytest


def service_missing(what: str) -> None:
    """Skip when a real service is missing, or fail when CI requires every service."""
    if os.environ.get("JITGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what}")
    pytest.skip(f"service missing: {what}")
