"""The UI's CSRF secret lives in the data dir: a restart (or a replica sharing the data dir's
keys) accepts the forms an earlier process served."""

from __future__ import annotations

import re
import stat
import threading
from pathlib import Path

import httpx2
import pytest

from adapters.http import csrf_secret
from adapters.http.csrf_secret import CSRF_KEY_FILE, CsrfSecretError, load_csrf_secret
from tests.support.live import start_live_gateway


def test_the_secret_is_created_once_private_and_kept(tmp_path: Path):
    first = load_csrf_secret(tmp_path)
    assert len(first) == 32 and load_csrf_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / CSRF_KEY_FILE).stat().st_mode) == 0o600
    (tmp_path / CSRF_KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError):
        load_csrf_secret(tmp_path)


def test_an_empty_key_file_is_a_clear_error_naming_the_file(tmp_path: Path):
    # what an older replica leaves between creating the file and writing it
    (tmp_path / CSRF_KEY_FILE).write_bytes(b"")
    with pytest.raises(CsrfSecretError, match=r"ui-csrf\.key does not hold a CSRF secret.*remove it"):
        load_csrf_secret(tmp_path)


def test_a_loser_never_sees_the_winners_file_half_made(tmp_path: Path, monkeypatch):
    """Another process starts while this one is between drawing the secret and publishing it:
    it must not find an empty key file, and both must end up with one secret."""
    draw = csrf_secret.secrets.token_bytes
    other: list[object] = []

    def token_bytes(n: int) -> bytes:
        if not other:  # the first draw (the winner's): the other process runs right now
            other.append("running")
            try:
                other[0] = load_csrf_secret(tmp_path)
            except Exception as exc:  # noqa: BLE001 - the failure is what is asserted
                other[0] = exc
        return draw(n)

    monkeypatch.setattr(csrf_secret.secrets, "token_bytes", token_bytes)
    mine = load_csrf_secret(tmp_path)
    assert not isinstance(other[0], Exception), other[0]
    assert mine == other[0] == (tmp_path / CSRF_KEY_FILE).read_bytes() and len(mine) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [CSRF_KEY_FILE]  # no temp file left
    assert stat.S_IMODE((tmp_path / CSRF_KEY_FILE).stat().st_mode) == 0o600


def test_concurrent_loads_agree_on_one_secret(tmp_path: Path):
    for round_ in range(20):
        data = tmp_path / str(round_)
        start = threading.Barrier(8)
        results: list[object] = [None] * 8

        def load(i: int) -> None:
            start.wait()
            try:
                results[i] = load_csrf_secret(data)
            except Exception as exc:  # noqa: BLE001
                results[i] = exc

        threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(isinstance(r, bytes) for r in results), results
        assert len(set(results)) == 1 and results[0] == (data / CSRF_KEY_FILE).read_bytes()
        assert sorted(p.name for p in data.iterdir()) == [CSRF_KEY_FILE]


def test_a_non_ascii_csrf_token_is_refused_with_the_csrf_code(tmp_path: Path):
    live = start_live_gateway(tmp_path / "d", drift_enabled=False)
    try:
        with httpx2.Client(base_url=live.url, cookies={"jitgate_ui": live.keys["reviewer"]},
                           timeout=30) as ui:
            for sent in ({"csrf": "é", "back": "/ui"}, {"csrf": "\u00e9" * 64}):
                res = ui.post("/ui/grants/grt_missing/approve", data=sent)
                assert res.status_code == 403 and 'data-code="csrf_invalid"' in res.text, res.text
            raw = ui.post("/ui/grants/grt_missing/approve", content=b"csrf=%ff%fe&back=/ui",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert raw.status_code == 403 and 'data-code="csrf_invalid"' in raw.text, raw.text
    finally:
        live.stop()


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
