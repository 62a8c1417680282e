"""The UI's CSRF secret lives in the data dir: a restart (or a replica sharing the data dir's
keys) accepts the forms an earlier process served."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx2
import pytest

from adapters.http.csrf_secret import CSRF_KEY_FILE, load_csrf_secret
from tests.support.live import start_live_gateway


def test_the_secret_is_created_once_private_and_kept(tmp_path: Path):
    first = load_csrf_secret(tmp_path)
    assert len(first) == 32 and load_csrf_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / CSRF_KEY_FILE).stat().st_mode) == 0o600
    (tmp_path / CSRF_KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError):
        load_csrf_secret(tmp_path)


def _form_token(url: str, key: str) -> str:
    with httpx2.Client(base_url=url, cookies={"jitgate_ui": key}, timeout=30) as ui:
        page = ui.get("/ui")
        assert page.status_code == 200, page.text
        return re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)


def test_a_form_served_before_a_restart_is_accepted_after_it(tmp_path: Path):
    data = tmp_path / "d"
    before = start_live_gateway(data, drift_enabled=False)
    try:
        reviewer = before.keys["reviewer"]
        token = _form_token(before.url, reviewer)
    finally:
        before.stop()
    after = start_live_gateway(data, drift_enabled=False)
    try:
        assert _form_token(after.url, reviewer) == token
        with httpx2.Client(base_url=after.url, cookies={"jitgate_ui": reviewer}, timeout=30) as ui:
            # the old page's token passes the CSRF check (the grant itself does not exist)
            res = ui.post("/ui/grants/grt_missing/approve", data={"csrf": token, "back": "/ui"})
            assert 'data-code="csrf_invalid"' not in res.text and res.status_code == 404, res.text
            forged = ui.post("/ui/grants/grt_missing/approve", data={"csrf": "0" * 64})
            assert 'data-code="csrf_invalid"' in forged.text
    finally:
        after.stop()
