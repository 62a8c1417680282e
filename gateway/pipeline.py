"""The Gateway: the path of one call (ARCHITECTURE §2) and the grant operations around it.

    facts = gather(call)             one concurrent round of reads
    decision = decide(call, facts)   pure
    mint the credential (allow)      fails ⇒ deny credential_unavailable
    audit.append(decision)           fails ⇒ deny audit_unavailable (the lease is released)
    forward / report the outcome     audit, drift, one-shot lease released

Every failure inside ends as a deny; nothing here ever turns an error into an allow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Mapping, Sequence

from policies.engine import PolicySet
from policies.scope import compile_scope

from .call_approvals import APPROVAL_WINDOW_S, CallApprovals
from .clock import Clock, SystemClock
from .decide import Facts, Throttle, decide
from .digest import args_digest
from .errors import GatewayError
from .grants import GrantRequest, GrantService, RenewRequest
from .ids import new_id
from .keys import KeyAuthenticator
from .model import (
    ApprovalStatus,
    CallApproval,
    CallOutcome,
    Credential,
    Decision,
    Effect,
    Grant,
    GrantStatus,
    Lease,
    Principal,
    Role,
    ToolCall,
)
from .outcomes import Outcomes
from .ports import (
    ApprovalStore,
    AuditEvent,
    AuditLog,
    CredentialIssuer,
    GrantStore,
    KeyStore,
    LeaseStore,
    MintRequest,
    StoreUnavailable,
    ToolPinStore,
)
from .tool_pins import ToolPins

__all__ = ["Gateway", "Authorization", "RunResult", "APPROVAL_WINDOW_S", "GATEWAY_LEASE",
           "durable_or_not", "unrecorded"]

log = logging.getLogger("jitgate.pipeline")

# The lease kind of a call the gateway forwards over its own connection (`authorize(token=False)`).
GATEWAY_LEASE = "gateway"
# Arguments that are no JSON values (NaN, infinity, a lone surrogate, an integer beyond 2^53, a
# key that is not a string) have no digest; the call is denied and recorded with this instead.
INVALID_DIGEST = "invalid"
UNRECORDABLE_ARGUMENTS = {"_unrecordable": "the arguments are not valid JSON values"}

# Denials that say "wait" or "we failed", not "no": retrying them is no pressure on policy.
_NOT_RETRY_PRESSURE = frozenset({"grant_pending", "approval_pending", "audit_unavailable",
                                 "store_unavailable", "credential_unavailable", "internal_error",
                                 "detector_unavailable"})


@dataclass(frozen=True, slots=True)
class Authorization:
    decision: Decision
    credential: Credential | None = None
    # Set when the decision was asked with `durable_later`: it is committed (visible, safe from a
    # crash of this process) and this resolves once it is on stable storage. Await it before
    # anyone sees the call's result.
    durable: Awaitable[None] | None = None

    def public(self) -> dict[str, Any]:
        out = self.decision.public()
        if self.credential is not None:
            cred: dict[str, Any] = {"lease_id": self.credential.lease.lease_id,
                                    "expires_at": self.credential.lease.expires_at,
                                    "kind": self.credential.lease.kind}
            if self.credential.value is not None:
                cred["token"] = self.credential.value
            out["credential"] = cred
        return out


@dataclass(frozen=True, slots=True)
class RunResult:
    authorization: Authorization
    output: Any = None
    error: str | None = None

    @property
    def decision(self) -> Decision:
        return self.authorization.decision


Forward = Callable[[ToolCall, Credential | None], Awaitable[Any]]
WorkloadVerifier = Callable[[str], Awaitable[Principal | None]]


def _refused(decision: Decision, code: str, reason: str) -> Decision:
    """`decision` turned into a fail-closed deny."""
    return replace(decision, effect=Effect.DENY, code=code, reasons=(reason,),
                   rule_ids=("fail_closed",), approval_id=None, consumes_approval=None)


def unrecorded(decision: Decision) -> Decision:
    """The decision as the caller must see it when its audit record did not reach the disk."""
    return _refused(decision, "audit_unavailable",
                    "the audit trail is unavailable, so the call's result is withheld")


async def durable_or_not(auth: Authorization) -> bool:
    """Wait for `auth.durable`; False (and logged) if the record could not be made durable."""
    if auth.durable is None:
        return True
    try:
        await auth.durable
        return True
    except Exception:
        log.error("decision %s could not be made durable", auth.decision.decision_id)
        return False


class Gateway:
    def __init__(
        self,
        *,
        policy: PolicySet,
        grants: GrantStore,
        approvals: ApprovalStore,
        keys: KeyStore,
        audit: AuditLog,
        leases: LeaseStore,
        pins: ToolPinStore | None = None,
        issuers: Mapping[str, CredentialIssuer] | None = None,
        default_issuer: str | None = "jwt",
        drift: Any = None,
        ratelimiter: Any = None,
        clock: Clock | None = None,
        workload_verifier: WorkloadVerifier | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._policy = policy
        self.grant_store = grants
        self.approvals = approvals
        self.keys = keys
        self.audit = audit
        self.leases = leases
        self.pins = pins
        self.issuers: dict[str, CredentialIssuer] = dict(issuers or {})
        self.default_issuer = default_issuer if default_issuer in self.issuers else None
        self.drift = drift
        self.ratelimiter = ratelimiter
        self.grants = GrantService(grants, audit, self.clock, lambda: self._policy)
        self._key_auth = KeyAuthenticator(keys, self.clock)
        self._workload_verifier = workload_verifier
        self._scope_cache: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._grant_listeners: list[Callable[[str, GrantStatus], Any]] = []
        self._decision_listeners: list[Callable[[Decision], None]] = []
        self.grants.on_change(self._grant_changed)
        self.call_approvals = CallApprovals(approvals, audit, self.clock)
        self.tool_pins = ToolPins(pins, audit, self.clock)
        self.outcomes = Outcomes(audit, self.clock, lambda: self._policy, lambda: self.drift,
                                 self._end_leases)

    # -- policy --------------------------------------------------------------------------

    @property
    def policy(self) -> PolicySet:
        return self._policy

    async def reload_policy(self, policy: PolicySet, actor: str = "gateway") -> None:
        """Swap the policy set atomically; the swap is audited first (fail closed)."""
        await self.audit.append(AuditEvent(type="policy.loaded", actor=actor, ts=self.clock.now(),
                                           data={"revision": policy.revision,
                                                 "sources": list(policy.sources),
                                                 "previous": self._policy.revision}))
        self._policy = policy

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, bearer: str) -> Principal | None:
        if not bearer:
            return None
        principal = await self._key_auth.authenticate(bearer)
        if principal is None and self._workload_verifier is not None and bearer.count(".") == 2:
            principal = await self._workload_verifier(bearer)
        return principal

    # -- grants --------------------------------------------------------------------------

    def on_decision(self, callback: Callable[[Decision], None]) -> None:
        """Observe every final decision (metrics); a failing observer is ignored."""
        self._decision_listeners.append(callback)

    def on_grant_change(self, callback: Callable[[str, GrantStatus], Any]) -> None:
        self._grant_listeners.append(callback)

    async def _grant_changed(self, grant: Grant) -> None:
        if grant.status is GrantStatus.ACTIVE and self.drift is not None:
            self.drift.seed(grant)
        for cb in self._grant_listeners:
            try:
                res = cb(grant.grant_id, grant.status)
                if asyncio.iscoroutine(res):
                    await res
            except Exception:  # a listener never breaks a grant change
                log.exception("grant listener failed")

    async def request_grant(self, principal: Principal, req: GrantRequest) -> Grant:
        if principal.role is not Role.AGENT and principal.role is not Role.ADMIN:
            raise GatewayError("forbidden", "only agents request grants")
        return await self.grants.request(principal, req, role_name=self._role_of(principal))

    async def approve_grant(self, principal: Principal, grant_id: str, note: str = "") -> Grant:
        return await self.grants.approve(principal, grant_id, note)

    async def deny_grant(self, principal: Principal, grant_id: str, reason: str = "") -> Grant:
        return await self.grants.deny(principal, grant_id, reason)

    async def get_grant(self, principal: Principal, grant_id: str) -> Grant:
        grant = await self.grants.get(principal, grant_id)
        return await self._settle(grant)

    async def list_grants(self, principal: Principal, status: str | None = None) -> list[Grant]:
        return [await self._settle(g) for g in await self.grants.list(principal, status)]

    async def renew_grant(self, principal: Principal, grant_id: str, req: RenewRequest) -> Grant:
        if self.drift is not None and hasattr(self.drift, "note_renewal"):
            await self.drift.note_renewal(grant_id)
        return await self.grants.renew(principal, grant_id, req, role_name=self._role_of(principal))

    async def revoke_grant(self, principal: Principal | None, grant_id: str, reason: str = "",
                           *, code: str = "revoked", evidence: Mapping[str, Any] | None = None) -> Grant:
        if principal is not None:
            await self.grants.get(principal, grant_id)  # visibility check first
        live = await self.leases.list_for_grant(grant_id, live_only=True, now=self.clock.now())
        grant = await self.grants.revoke(principal, grant_id, reason or code, code=code,
                                         evidence=evidence, leases=[l.lease_id for l in live])
        # Listed again now that the revocation is stored: a lease written meanwhile by a call
        # decided just before is ended too (a call that reads the grant after this sees it
        # revoked: see `_still_granted`).
        known = {l.lease_id for l in live}
        later = await self.leases.list_for_grant(grant_id, live_only=True, now=self.clock.now())
        await self._end_leases([*live, *(l for l in later if l.lease_id not in known)],
                               f"grant {code}")
        return grant

    async def release_grant(self, principal: Principal, grant_id: str) -> Grant:
        return await self.revoke_grant(principal, grant_id, "released by the agent", code="released")

    async def leases_for_grant(self, principal: Principal, grant_id: str) -> list[Lease]:
        await self.grants.get(principal, grant_id)
        return await self.leases.list_for_grant(grant_id)

    async def _end_leases(self, leases: Sequence[Lease], reason: str) -> None:
        """Mark each lease revoked and have its issuer release the credential; a failure of one
        step never skips the other (a store outage must not leave a minted role alive)."""
        for lease in leases:
            try:
                await self.leases.revoke(lease.lease_id, reason)
            except Exception:
                log.error("could not mark lease %s revoked", lease.lease_id)
            issuer = self.issuers.get(lease.kind)
            if issuer is not None:
                try:
                    await issuer.release(lease, reason)
                except Exception:
                    log.error("issuer %s could not release lease %s", lease.kind, lease.lease_id)

    async def _settle(self, grant: Grant) -> Grant:
        """Record an expiry the clock already enforces."""
        if grant.effective_status(self.clock.now()) is GrantStatus.EXPIRED and \
                grant.status is not GrantStatus.EXPIRED:
            live = await self.leases.list_for_grant(grant.grant_id, live_only=True,
                                                    now=self.clock.now())
            grant = await self.grants.mark_expired(grant)
            await self._end_leases(live, "grant expired")
        return grant

    def _role_of(self, principal: Principal) -> str:
        explicit = principal.attributes.get("policy_role") if principal.attributes else None
        return str(explicit) if explicit else principal.role.value

    # -- per-call approvals --------------------------------------------------------------

    async def list_approvals(self, principal: Principal,
                             status: str | None = "pending") -> list[CallApproval]:
        return await self.call_approvals.list(principal, status)

    async def approve_call(self, principal: Principal, approval_id: str) -> CallApproval:
        return await self.call_approvals.decide(principal, approval_id, True)

    async def deny_call(self, principal: Principal, approval_id: str) -> CallApproval:
        return await self.call_approvals.decide(principal, approval_id, False)

    # -- tool pinning --------------------------------------------------------------------

    async def check_tool_pin(self, tool: str, fingerprint: str) -> bool:
        """True when the tool is pinned to this fingerprint (pinning it if it is new)."""
        return await self.tool_pins.check(tool, fingerprint)

    async def record_tool_changed(self, tool: str, old: str, new: str) -> None:
        await self.tool_pins.changed(tool, old, new)

    async def repin_tool(self, principal: Principal, tool: str, fingerprint: str) -> None:
        await self.tool_pins.repin(principal, tool, fingerprint)

    # -- the path of one call ------------------------------------------------------------

    def _compiled_scope(self, grant: Grant) -> tuple[Any, ...]:
        key = (grant.grant_id, grant.version)
        scope = self._scope_cache.get(key)
        if scope is None:
            if len(self._scope_cache) > 10_000:
                self._scope_cache.clear()
            scope = compile_scope([s.as_dict() for s in grant.scope])
            self._scope_cache[key] = scope
        return scope

    async def authorize(self, call: ToolCall, *, tool_changed: bool = False,
                        invalid_arguments: str | None = None,
                        durable_later: bool = False, token: bool = True) -> Authorization:
        """Decide one call. With `durable_later`, a store that can (SQLite) answers once the
        decision is committed and lets the caller overlap the fsync with the tool call:
        `Authorization.durable` must then be awaited before the result reaches anyone.
        `token=False` is for a caller that forwards the call over its own connection (the MCP
        edge): an allowed call then gets a lease of kind `gateway` and no bearer token, which
        nobody could have presented."""
        if self.outcomes.unsettled:  # outputs reported since the last decision: drift sees them first
            await self.outcomes.settle(record_now=False)
        decision_id = new_id("dec")
        policy = self._policy
        now = self.clock.now()
        try:
            digest = args_digest(call.arguments)
        except Exception:
            digest = INVALID_DIGEST
            invalid_arguments = invalid_arguments or "arguments are not valid JSON values"
        grant: Grant | None = None
        signals: tuple = ()
        try:
            tool_spec = policy.tool_spec(call.tool)
            grant = await self.grant_store.get(call.grant_id) if call.grant_id else None
            # A call naming another agent's grant is refused (`grant_not_owned`); it must not
            # count against that grant's rate windows or drift score.
            own = grant is not None and grant.agent_id == call.agent.id
            throttle = None
            if self.ratelimiter is not None:
                rv = await self.ratelimiter.check(call, call.grant_id if own or grant is None
                                                  else None, policy)
                if rv.retry_after is not None:
                    throttle = Throttle(rv.retry_after, rv.code or "rate_limited", rv.limit_id)
            drift_score, drift_revoked = 0.0, False
            if self.drift is not None and own and grant.status is GrantStatus.ACTIVE:
                signals = tuple(await self.drift.assess(call, grant, tool_spec, policy))
                drift_score = self.drift.score(grant.grant_id)
                drift_revoked = self.drift.revoked(grant.grant_id)
            facts = Facts(
                now=now, decision_id=decision_id, args_digest=digest, grant=grant,
                grant_scope=self._compiled_scope(grant) if grant is not None else None,
                tool_changed=tool_changed, invalid_arguments=invalid_arguments,
                throttle=throttle, drift_score=drift_score, new_signals=signals,
                drift_threshold=policy.drift.threshold if self.drift is not None else None,
                drift_revoked=drift_revoked,
            )
            decision = decide(call, facts, policy)
            if decision.effect is Effect.REVIEW:
                approval = await self.approvals.find(call.agent.id, call.grant_id, call.tool, digest)
                facts = replace(facts, approval=approval, new_approval_id=new_id("apr"))
                decision = decide(call, facts, policy)
        except StoreUnavailable:
            decision = self._fail(call, decision_id, digest, policy, "store_unavailable")
        except Exception:
            log.exception("decision failed for %s", call.tool)
            decision = self._fail(call, decision_id, digest, policy, "internal_error")
        try:
            return await self._conclude(call, decision, grant, policy, signals, durable_later,
                                        token)
        finally:
            self.outcomes.record_soon()  # earlier outputs' records, while this call runs

    async def refuse(self, call: ToolCall, code: str, reason: str) -> Authorization:
        """An edge refuses a call before policy can judge it (unknown tool, upstream down):
        still a decision with an id, audited like any other."""
        try:
            digest = args_digest(call.arguments)
        except Exception:
            digest = INVALID_DIGEST
        decision = Decision(decision_id=new_id("dec"), effect=Effect.DENY, code=code,
                            reasons=(reason,), rule_ids=("edge",),
                            policy_revision=self._policy.revision, tool=call.tool,
                            agent_id=call.agent.id, args_digest=digest, grant_id=call.grant_id)
        return await self._conclude(call, decision, None, self._policy, ())

    def _fail(self, call: ToolCall, decision_id: str, digest: str, policy: PolicySet,
              code: str, reason: str | None = None) -> Decision:
        return Decision(decision_id=decision_id, effect=Effect.DENY, code=code,
                        reasons=(reason or "the gateway could not decide, so it denies",),
                        rule_ids=("fail_closed",), policy_revision=policy.revision,
                        tool=call.tool, agent_id=call.agent.id, args_digest=digest,
                        grant_id=call.grant_id)

    async def _conclude(self, call: ToolCall, decision: Decision, grant: Grant | None,
                        policy: PolicySet, signals: tuple,
                        durable_later: bool = False, token: bool = True) -> Authorization:
        lease: Lease | None = None
        credential: Credential | None = None
        try:
            if decision.effect is Effect.ALLOW and decision.consumes_approval:
                if not await self.approvals.set_status(decision.consumes_approval,
                                                       ApprovalStatus.CONSUMED.value,
                                                       expected=ApprovalStatus.APPROVED.value):
                    decision = replace(decision, effect=Effect.REVIEW, code="review_required",
                                       reasons=("the approval was already used",),
                                       consumes_approval=None)
            if decision.effect is Effect.ALLOW and grant is not None and grant.call_budget is not None:
                used = await self.grants.add_call(grant)
                if used > grant.call_budget:
                    decision = replace(decision, effect=Effect.DENY, code="grant_exhausted",
                                       reasons=(f"the grant's budget of {grant.call_budget} calls is used up",))
            if decision.effect is Effect.REVIEW and decision.approval_id and decision.code != "approval_pending":
                await self.approvals.create(CallApproval(
                    approval_id=decision.approval_id, agent_id=call.agent.id,
                    grant_id=call.grant_id, tool=call.tool, args_digest=decision.args_digest,
                    decision_id=decision.decision_id, status=ApprovalStatus.PENDING,
                    created_at=self.clock.now(), expires_at=self.clock.now() + APPROVAL_WINDOW_S,
                    redacted_args=policy.redact(call.tool, call.arguments)))
        except StoreUnavailable:
            decision = _refused(decision, "store_unavailable", "the state store is unavailable")
        if decision.effect is Effect.ALLOW:
            try:
                credential = await self._mint(call, decision, policy, token, grant)
                lease = credential.lease if credential is not None else None
            except Exception:
                log.error("credential issuer failed for %s", call.tool)
                decision = _refused(decision, "credential_unavailable",
                                        "no credential could be minted for this call")
        record = {
            **decision.public(),
            "agent_id": call.agent.id,
            "arguments": (policy.redact(call.tool, call.arguments)
                          if decision.args_digest != INVALID_DIGEST else UNRECORDABLE_ARGUMENTS),
            "call_id": call.call_id,
            "session_id": call.session_id,
            "lease_id": lease.lease_id if lease else None,
            "signals": [s.public() for s in decision.signals],
        }
        event = AuditEvent(type="call.decided", actor=call.agent.id, grant_id=call.grant_id,
                           decision_id=decision.decision_id, data=record, ts=self.clock.now())
        # The lease record and the decision travel together: one transaction where the store
        # offers it (SQLite), else two writes in the same group-commit round.
        durable: Awaitable[None] | None = None
        same_engine = lease is None or (getattr(self.leases, "shares_engine_with", None) is not None
                                        and self.leases.shares_engine_with(self.audit))
        early = getattr(self.audit, "append_with_lease_committed", None) \
            if durable_later and same_engine else None
        together = getattr(self.audit, "append_with_lease", None) \
            if lease is not None and same_engine else None
        if early is not None or together is not None:
            try:
                if early is not None:
                    _, durable = await early(event, lease)
                else:
                    await together(event, lease)  # type: ignore[misc]
                audit_failed = lease_failed = False
            except Exception:
                audit_failed, lease_failed = True, False
        else:
            writes = [self.audit.append(event)]
            if lease is not None:
                writes.append(self.leases.add(lease))
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            audit_failed = isinstance(outcomes[0], BaseException)
            lease_failed = lease is not None and isinstance(outcomes[1], BaseException)
        if audit_failed:
            log.error("audit append failed; denying %s", decision.decision_id)
            if lease is not None:
                await self._end_leases([lease], "audit_unavailable")
            return Authorization(_refused(decision, "audit_unavailable",
                                              "the audit trail is unavailable, so the call is denied"))
        if lease_failed:
            log.error("lease record failed; denying %s", decision.decision_id)
            return await self._withdraw(call, decision, lease, "store_unavailable",  # type: ignore[arg-type]
                                        "credential_unavailable",
                                        "the credential could not be recorded, so the call is denied")
        if lease is not None and lease.kind != GATEWAY_LEASE and grant is not None and \
                not await self._still_granted(grant.grant_id):
            return await self._withdraw(call, decision, lease, "grant revoked", "grant_revoked",
                                        "the grant was revoked while the call was decided")
        if self.drift is not None and (grant is None or grant.agent_id == call.agent.id):
            try:
                await self.drift.record(call, decision, signals)
            except Exception:
                log.error("drift monitor failed to record %s", decision.decision_id)
        if decision.revoke_grant and grant is not None and grant.status is GrantStatus.ACTIVE:
            await self._revoke_for_drift(grant, decision)
        elif grant is not None and decision.code == "grant_expired":
            try:
                await self._settle(grant)
            except Exception:  # the expiry is enforced by the clock; recording it can wait
                log.error("could not record the expiry of grant %s", grant.grant_id)
        self.outcomes.remember(call, decision, lease)
        for observe in self._decision_listeners:
            try:
                observe(decision)
            except Exception:
                log.error("decision observer failed")
        if self.ratelimiter is not None and decision.code not in _NOT_RETRY_PRESSURE:
            try:
                await self.ratelimiter.record(call, decision)
            except Exception:
                log.error("rate limiter failed to record %s", decision.decision_id)
        return Authorization(decision, credential, durable)

    async def _withdraw(self, call: ToolCall, decision: Decision, lease: Lease, ended: str,
                        code: str, reason: str) -> Authorization:
        """An allow already recorded is withdrawn before anyone saw it: the lease is ended, the
        refusal recorded after the decision, and the caller denied."""
        await self._end_leases([lease], ended)
        refused = _refused(decision, code, reason)
        try:
            await self.audit.append(AuditEvent(
                type="call.refused", actor="gateway", grant_id=call.grant_id,
                decision_id=decision.decision_id, ts=self.clock.now(),
                data={"code": code, "lease_id": lease.lease_id}))
        except Exception:
            log.error("could not record the refusal of %s", decision.decision_id)
        return Authorization(refused)

    async def _still_granted(self, grant_id: str) -> bool:
        """Read after the lease is stored: a revocation stored before this read is seen here,
        and one stored after it lists the lease (`revoke_grant` lists again after storing)."""
        try:
            current = await self.grant_store.recheck(grant_id)
        except Exception:
            return False
        return current is not None and \
            current.effective_status(self.clock.now()) is GrantStatus.ACTIVE

    async def _revoke_for_drift(self, grant: Grant, decision: Decision) -> None:
        """Revoke after a drift decision. The call is denied either way; if the revocation does
        not reach the store, the drift monitor still holds the grant as revoked, so every later
        call is denied and retries it (`Facts.drift_revoked`)."""
        evidence = {"decision_id": decision.decision_id,
                    "signals": [s.public() for s in self.drift.signals(grant.grant_id)]
                    if self.drift is not None else [],
                    "reasons": list(decision.reasons)}
        try:
            await self.revoke_grant(None, grant.grant_id, "drift from the declared objective",
                                    code="drift", evidence=evidence)
        except Exception as exc:
            log.error("could not revoke grant %s for drift (%s); its calls stay denied",
                      grant.grant_id, exc.code if isinstance(exc, GatewayError)
                      else type(exc).__name__)

    async def _mint(self, call: ToolCall, decision: Decision, policy: PolicySet,
                    token: bool = True, grant: Grant | None = None) -> Credential | None:
        spec = policy.tool_spec(call.tool)
        options = dict(spec.credential or {})
        kind = options.pop("kind", None) or self.default_issuer
        if kind in (None, "none"):
            return None
        tier = policy.tier_of(call.tool)
        now = self.clock.now()
        ttl = float(options.pop("ttl_s", tier.credential_ttl_s))
        if grant is not None:  # a credential never outlives its grant
            ttl = max(0.0, min(ttl, grant.expires_at - now))
        request = MintRequest(
            call=call, decision_id=decision.decision_id, args_digest=decision.args_digest,
            ttl_s=ttl, audience=spec.audience or call.tool, lease_id=new_id("lse"), now=now,
            options=options)
        if not token:  # the gateway forwards the call itself: the lease alone binds it
            return Credential(lease=request.lease(GATEWAY_LEASE))
        issuer = self.issuers.get(kind)
        if issuer is None:
            raise RuntimeError(f"no issuer {kind}")
        return await issuer.mint(request)

    async def complete(self, principal: Principal, decision_id: str, outcome: CallOutcome) -> None:
        """Record what the tool returned: drift detectors, audit, one-shot lease released."""
        await self.outcomes.complete(principal, decision_id, outcome)

    async def report(self, principal: Principal, decision_id: str, outcome: CallOutcome) -> None:
        """Like `complete`, for a caller that answers first: the output reaches the drift
        detectors at the start of the next decision, and the records are written behind."""
        await self.outcomes.report(principal, decision_id, outcome)

    async def drain(self) -> None:
        """Wait for every outcome still being recorded (reads, shutdown, tests)."""
        await self.outcomes.drain()

    async def run(self, call: ToolCall, forward: Forward) -> RunResult:
        """Authorize, forward when allowed, and report the outcome: the in-process path. The
        decision's fsync overlaps the tool call; nothing is returned before it is durable (if
        it cannot be made durable, the output is withheld: `audit_unavailable`)."""
        auth = await self.authorize(call, durable_later=True)
        if not auth.decision.allowed:
            if not await durable_or_not(auth):
                return RunResult(Authorization(unrecorded(auth.decision)))
            return RunResult(auth)
        try:
            output = await forward(call, auth.credential)
        except Exception as exc:
            err = exc.code if isinstance(exc, GatewayError) else "tool_error"
            result = RunResult(auth, error=err)
            outcome = CallOutcome(auth.decision.decision_id, ok=False, error=err)
        else:
            result = RunResult(auth, output=output)
            outcome = CallOutcome(auth.decision.decision_id, ok=True, output=output)
        if not await durable_or_not(auth):
            return RunResult(Authorization(unrecorded(auth.decision)), error="audit_unavailable")
        await self.complete(call.agent, auth.decision.decision_id, outcome)
        return result

    # -- reading the trail ---------------------------------------------------------------

    async def get_decision(self, principal: Principal, decision_id: str) -> dict[str, Any]:
        await self.drain()
        records = await self.audit.read(decision_id=decision_id, limit=50)
        decided = [r for r in records if r.type == "call.decided"]
        if not decided:
            raise GatewayError("decision_not_found", f"no decision {decision_id}")
        rec = decided[0]
        if principal.role is Role.AGENT and rec.actor != principal.id:
            raise GatewayError("decision_not_found", f"no decision {decision_id}")
        out = dict(rec.data)
        completed = [r for r in records if r.type == "call.completed"]
        if completed:
            out["outcome"] = dict(completed[0].data)
        out["audit_seq"] = rec.seq
        return out

    async def decisions_for_grant(self, principal: Principal, grant_id: str) -> list[dict[str, Any]]:
        await self.drain()
        await self.grants.get(principal, grant_id)
        records = await self.audit.read(grant_id=grant_id, limit=100_000)
        # an agent sees its own calls; another agent's attempt on this grant is not its to read
        mine = principal.role is not Role.AGENT
        return [{**dict(r.data), "seq": r.seq, "ts": r.ts} for r in records
                if r.type == "call.decided" and (mine or r.actor == principal.id)]
