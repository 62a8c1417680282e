"""JITGate policy language: constraints, scopes, documents, the compiled PolicySet and verdict().

Pure Python: imports nothing from gateway/ or adapters/.
"""

from policies.conditions import ConditionError, Constraint, compile_constraint, resolve_arg
from policies.engine import (
    DriftSettings,
    PolicySet,
    RateLimitSpec,
    RoleSpec,
    RuleContext,
    RuleHit,
    TierSpec,
    ToolSpec,
    verdict,
)
from policies.loader import (
    PolicyLoadError,
    Problem,
    check_files,
    default_pack_paths,
    load_default,
    load_policy_files,
    load_policy_texts,
)
from policies.scope import CompiledScopeItem, compile_scope, scope_covers, scope_within
from policies.testing import CaseResult, explain, run_policy_tests

__all__ = [
    "ConditionError",
    "Constraint",
    "compile_constraint",
    "resolve_arg",
    "CompiledScopeItem",
    "compile_scope",
    "scope_covers",
    "scope_within",
    "TierSpec",
    "ToolSpec",
    "RoleSpec",
    "RuleContext",
    "RuleHit",
    "DriftSettings",
    "RateLimitSpec",
    "PolicySet",
    "verdict",
    "Problem",
    "PolicyLoadError",
    "load_policy_files",
    "load_policy_texts",
    "default_pack_paths",
    "load_default",
    "check_files",
    "CaseResult",
    "run_policy_tests",
    "explain",
]
