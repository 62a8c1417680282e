"""Scope detector: a call outside the grant's declared scope is evidence of drift.

The deny itself is decide()'s (`tool_not_in_scope`, `argument_out_of_scope`); this detector adds
the weighted signal so that repeated probing beyond the scope ends in revocation.
"""

from __future__ import annotations

from typing import Any

from policies.scope import compile_scope, scope_covers

from ..model import DriftSignal, Grant, ToolCall
from .detector import DriftConfig, signal
from .state import GrantSession

__all__ = ["ScopeDetector"]


class ScopeDetector:
    name = "scope"

    async def assess(self, state: GrantSession, call: ToolCall, grant: Grant | None,
                     tool_spec: Any, policy: Any) -> list[DriftSignal]:
        if grant is None:
            return []
        compiled = state.cache.get("scope")
        if compiled is None or compiled[0] != grant.version:
            compiled = state.cache["scope"] = (grant.version, compile_scope(grant.scope))
        ok, code, detail = scope_covers(compiled[1], call.tool, call.arguments)
        if ok:
            return []
        s = signal(DriftConfig.of(policy), self.name, code, tool=call.tool, detail=detail)
        return [s] if s else []
