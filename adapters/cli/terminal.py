"""Text that reaches a reviewer's terminal: agent-controlled fields, shown inert.

An objective, a tool name or an argument comes from an agent. Printed raw, a carriage return,
an ANSI/OSC escape sequence or a bidi override in it can move the cursor, erase or rewrite the
rows around it, retitle the window or reorder what the reviewer reads. `safe()` turns every such
character into a visible escape (``\\x1b``, ``\\u202e``) and leaves all other text as it is.
"""

from __future__ import annotations

__all__ = ["safe", "UNSAFE_CODEPOINTS"]

# C0 controls (tab and newline included: they realign or add rows), DEL, C1 controls
# (U+009B is a one-byte CSI), the bidi embeddings, overrides and isolates, the bidi marks, and
# the Unicode line and paragraph separators.
UNSAFE_CODEPOINTS: frozenset[int] = frozenset([
    *range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),
    *range(0x202A, 0x202F), *range(0x2066, 0x206A),
    0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
])

_TABLE: dict[int, str] = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
                          for c in UNSAFE_CODEPOINTS}


def safe(value: object) -> str:
    """`value` as text with every control, bidi and line-separator character escaped."""
    return (value if isinstance(value, str) else str(value)).translate(_TABLE)
