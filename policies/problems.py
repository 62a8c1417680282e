"""What the loader reports: every problem with its file, rule id, code and location."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["Problem", "PolicyLoadError", "PROBLEM_CODES", "loc_to_path"]

PROBLEM_CODES: dict[str, str] = {
    "file_not_found": "the policy file cannot be read",
    "yaml_syntax": "the YAML cannot be parsed (the message gives the line)",
    "duplicate_key": "a mapping repeats a key (YAML would silently keep the last one)",
    "invalid_document": "the document is not a mapping with version: 1",
    "unknown_field": "a field that the policy language does not know",
    "missing_field": "a required field is missing",
    "invalid_value": "a field has a value of the wrong type or outside its range",
    "unknown_tier": "tier names are low, privileged and critical",
    "invalid_tier": "a tier's settings contradict each other",
    "conflicting_tier": "a tier is defined twice with different content",
    "conflicting_tool": "a tool pattern is mapped twice with different content",
    "conflicting_role": "a role is defined twice with different content",
    "conflicting_drift": "drift settings are defined twice with different content",
    "duplicate_rule_id": "two rules share an id",
    "duplicate_rate_limit_id": "two rate limits share an id",
    "bad_rate_limit": "a rate limit string the limits library cannot parse",
    "bad_rule_id": "rule ids are letters, digits and _ . : -",
    "bad_code": "rule codes are snake_case",
    "bad_time": "time windows are HH:MM",
    "bad_timezone": "an unknown IANA time zone",
    "unknown_operator": "a constraint uses an operator that does not exist",
    "bad_constraint": "a constraint must have exactly one operator key",
    "bad_operand": "an operator's operand has the wrong type",
    "bad_regex": "a regex does not compile or is longer than 512 characters",
    "bad_pointer": "an argument key is not a valid name or JSON pointer",
    "invalid_scope": "a baseline or ceiling item is malformed",
}


@dataclass(frozen=True)
class Problem:
    file: str
    rule_id: str | None
    code: str
    message: str
    path: str = ""

    def __str__(self) -> str:
        rule = f" rule {self.rule_id}" if self.rule_id else ""
        where = f" at {self.path}" if self.path else ""
        return f"{self.file}:{rule}{where}: {self.code}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rule_id": self.rule_id,
            "code": self.code,
            "message": self.message,
            "path": self.path,
        }


class PolicyLoadError(Exception):
    """The policy could not be loaded; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "no details"
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid policy: {first}{more}")

    @property
    def code(self) -> str:
        return "invalid_policy"


def loc_to_path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
