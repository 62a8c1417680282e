import stat

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.credentials.keyring import ROTATION_LEEWAY_S, Keyring, b64url_decode, jwk_thumbprint
from gateway.clock import FakeClock


def test_ephemeral_keyring_publishes_one_ed25519_key():
    ring = Keyring.ephemeral(FakeClock())
    jwks = ring.jwks()
    assert len(jwks["keys"]) == 1
    jwk = jwks["keys"][0]
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig"}
    assert jwk["kid"] == ring.active_kid == jwk_thumbprint(jwk["x"])
    kid, sig = ring.sign(b"hello")
    assert kid == ring.active_kid
    Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(sig, b"hello")


def test_open_creates_private_files_and_reopens_the_same_keys(tmp_path):
    clock = FakeClock()
    directory = tmp_path / "data" / "keys"
    ring = Keyring.open(directory, clock)
    pem = directory / f"{ring.active_kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "keyring.json").stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in pem.read_bytes()
    again = Keyring.open(directory, clock)
    assert again.active_kid == ring.active_kid
    assert again.jwks() == ring.jwks()


def test_rotation_keeps_the_old_key_until_its_tokens_expire_then_prunes_it(tmp_path):
    clock = FakeClock()
    directory = tmp_path / "keys"
    ring = Keyring.open(directory, clock)
    old = ring.active_kid
    new = ring.rotate(max_token_ttl_s=300)
    assert new != old and ring.active_kid == new
    assert sorted(ring.kids()) == sorted([old, new])
    reopened = Keyring.open(directory, clock)
    assert reopened.active_kid == new and sorted(reopened.kids()) == sorted([old, new])

    clock.advance(300 + ROTATION_LEEWAY_S - 1)
    assert ring.public_key(old) is not None
    clock.advance(1)
    assert ring.public_key(old) is None
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new]
    assert ring.prune() == [old]
    assert not (directory / f"{old}.pem").exists()
    assert Keyring.open(directory, clock).kids() == [new]


def test_second_rotation_prunes_keys_already_past_their_window():
    clock = FakeClock()
    ring = Keyring.ephemeral(clock)
    first = ring.active_kid
    second = ring.rotate(max_token_ttl_s=10, leeway_s=0)
    clock.advance(11)
    third = ring.rotate(max_token_ttl_s=10, leeway_s=0)
    assert ring.kids() == [second, third]
    assert ring.public_key(first) is None
