import pytest
from cred_support import ISS, make_request

from adapters.credentials import CallTokenIssuer, Keyring, MemoryReplayStore
from adapters.credentials.issuer_chain import IssuerChain
from adapters.credentials.secrets import (InjectionSpec, SecretError, SecretInjectingIssuer,
                                          SecretResolver)
from gateway.clock import FakeClock
from gateway.ports import CredentialIssuer


class Recording:
    kind = "rec"

    def __init__(self):
        self.released = []

    async def mint(self, request):
        from gateway.model import Credential

        return Credential(lease=None, forward={"headers": {"X-A": "1"}})

    async def release(self, lease, reason):
        self.released.append(reason)


async def test_token_plus_secret_under_one_lease():
    clock = FakeClock()
    resolver = SecretResolver({"k": {"env": "K"}}, environ={"K": "secret-value-1"})
    chain = IssuerChain(CallTokenIssuer(Keyring.ephemeral(clock), ISS, clock),
                        SecretInjectingIssuer(resolver, {"billing.refund": InjectionSpec(
                            "k", kind="api_key")}))
    assert isinstance(chain, CredentialIssuer) and chain.kind == "jwt"
    cred = await chain.mint(make_request(now=clock.now(), lease_id="ls_c"))
    assert cred.value and cred.value.count(".") == 2 and cred.lease.lease_id == "ls_c"
    assert cred.forward == {"headers": {"X-API-Key": "secret-value-1"}}
    await chain.release(cred.lease, "done")


async def test_a_failed_mint_releases_what_was_minted():
    clock = FakeClock()
    first = Recording()
    chain = IssuerChain(first, SecretInjectingIssuer(SecretResolver({})))
    with pytest.raises(SecretError):
        await chain.mint(make_request(now=clock.now()))
    assert first.released == ["mint_failed"]


async def test_memory_replay_store_answers_used_for_introspection():
    clock = FakeClock()
    store = MemoryReplayStore(clock)
    assert not await store.seen("j")
    await store.first_use("j", clock.now() + 10)
    assert await store.seen("j")
