import base64
import pickle

import pytest
from cred_support import make_request

from adapters.credentials.secrets import (REDACTED, InjectionSpec, Redactor, Secret, SecretError,
                                          SecretInjectingIssuer, SecretResolver, inject_env,
                                          inject_http)
from gateway.clock import FakeClock
from gateway.ports import CredentialIssuer

VALUE = "sk-live-7f3a9c1e55d0"


@pytest.fixture
def resolver(tmp_path):
    path = tmp_path / "db_password"
    path.write_text("file-pass-8812\n")
    return SecretResolver({"crm": {"env": "CRM_KEY"}, "db": {"file": str(path)},
                           "missing": {"env": "NOPE"}, "nofile": {"file": str(tmp_path / "x")}},
                          environ={"CRM_KEY": VALUE})


def test_secret_masks_itself():
    s = Secret(VALUE)
    assert repr(s) == str(s) == "Secret('****')" and VALUE not in f"{s} {s!r} {[s]}"
    assert s.reveal() == VALUE
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_resolver_reads_env_and_file_and_fails_without_the_value(resolver):
    assert resolver.resolve("crm").reveal() == VALUE
    assert resolver.resolve("db").reveal() == "file-pass-8812"
    for name in ("missing", "nofile", "unknown"):
        with pytest.raises(SecretError) as info:
            resolver.resolve(name)
        assert info.value.code == "secret_unavailable" and name in str(info.value)
    with pytest.raises(ValueError):
        SecretResolver({"inline": {"value": "x"}})


def test_http_injection_forms(resolver):
    bearer = inject_http({"Authorization": "Bearer agent", "X": "1"},
                         InjectionSpec("crm"), resolver)
    assert bearer == {"X": "1", "Authorization": f"Bearer {VALUE}"}
    api = inject_http({}, InjectionSpec("crm", kind="api_key", header="X-Api-Token"), resolver)
    assert api == {"X-Api-Token": VALUE}
    basic = inject_http({}, InjectionSpec("db", kind="basic", username="svc"), resolver)
    encoded = basic["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == "svc:file-pass-8812"
    # the derived form is scrubbed too
    assert Redactor(resolver).scrub(f"echo {encoded}") == f"echo {REDACTED}"
    with pytest.raises(ValueError):
        inject_http({}, InjectionSpec("crm", kind="env", env_var="K"), resolver)


def test_env_injection(resolver):
    env = inject_env({"PATH": "/bin"}, InjectionSpec("crm", kind="env", env_var="CRM_API_KEY"),
                     resolver)
    assert env == {"PATH": "/bin", "CRM_API_KEY": VALUE}


async def test_issuer_gives_forwarding_material_only(resolver):
    issuer = SecretInjectingIssuer(resolver, {"crm.search": InjectionSpec("crm")})
    assert isinstance(issuer, CredentialIssuer) and issuer.kind == "secret"
    now = FakeClock().now()
    cred = await issuer.mint(make_request("crm.search", now=now, lease_id="ls_s", ttl_s=20))
    assert cred.value is None and cred.forward == {"headers": {"Authorization": f"Bearer {VALUE}"}}
    assert cred.lease.lease_id == "ls_s" and cred.lease.kind == "secret"
    assert cred.lease.expires_at == now + 20
    assert VALUE not in repr(cred) and VALUE not in str(cred.lease.public())
    stdio = await issuer.mint(make_request(
        "other", now=now, options={"inject": {"secret": "crm", "kind": "env",
                                              "env_var": "CRM_API_KEY"}}))
    assert stdio.forward == {"env": {"CRM_API_KEY": VALUE}}
    with pytest.raises(SecretError):
        await issuer.mint(make_request("unconfigured", now=now))


def test_redactor_scrubs_nested_data(resolver):
    resolver.resolve("crm")
    data = {"out": [f"key={VALUE}", (VALUE, 3)], VALUE: {"b": VALUE.encode()}, "n": 1}
    assert Redactor(resolver).scrub(data) == {
        "out": [f"key={REDACTED}", (REDACTED, 3)], REDACTED: {"b": REDACTED.encode()}, "n": 1}
