"""The checkpoint signer's key file."""

from __future__ import annotations

import stat

from adapters.storage.signer import Ed25519FileSigner, load_public_keys


def test_creates_a_private_key_file_and_reloads_it(tmp_path):
    s1 = Ed25519FileSigner(tmp_path)
    path = tmp_path / "audit_signing_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    s2 = Ed25519FileSigner(path)
    assert s1.kid == s2.kid and s1.kid.startswith("audit-")
    sig = s2.sign(b"payload")
    s1.public_keys()[s1.kid].verify(sig, b"payload")
    assert set(load_public_keys(tmp_path)) == {s1.kid}
    assert load_public_keys(tmp_path / "elsewhere") == {}
    assert "BEGIN" not in repr(s1)
