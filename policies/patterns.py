"""Low-level matchers shared by constraints and rules: path globs, tool-name globs, hosts, paths.

Semantics (documented in policies/README.md):

* path glob: ``*`` and ``?`` never cross ``/``; ``**`` crosses ``/``; ``**/`` also matches
  zero directories (``**/.env`` matches ``.env`` and ``a/b/.env``); ``[...]`` as in fnmatch.
* tool pattern: fnmatch, case-sensitive, ``*`` matches anything including dots.
* host / e-mail domain entry: ``example.com`` exact, ``.example.com`` or ``*.example.com`` any
  subdomain (not the apex itself). Compared lower-case, IDNA-encoded, trailing dot removed.
* canonical path: absolute, no empty, ``.`` or ``..`` component, optional trailing ``/``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
import re
import socket
from urllib.parse import urlsplit

__all__ = [
    "compile_path_glob",
    "compile_tool_pattern",
    "is_tool_glob",
    "normalize_host",
    "host_entry",
    "host_matches",
    "entry_within",
    "canonical_path",
    "url_host",
    "email_domain",
]

_MAGIC = re.compile(r"[*?\[]")
_FORBIDDEN_IN_NETLOC = re.compile(r"[\\\s\x00-\x1f\x7f]")
_IPV4_SPELLING = re.compile(r"(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}")


def compile_path_glob(pattern: str) -> re.Pattern[str]:
    """Translate a path glob to an anchored regex (see module doc)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^/" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def is_tool_glob(pattern: str) -> bool:
    return _MAGIC.search(pattern) is not None


def compile_tool_pattern(pattern: str) -> re.Pattern[str] | None:
    """None for an exact name, else the compiled fnmatch regex."""
    if not is_tool_glob(pattern):
        return None
    return re.compile(fnmatch.translate(pattern))


def normalize_host(host: str) -> str | None:
    host = host.strip().lower()
    if ":" in host:
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            return None
        mapped = v6.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 host a.b.c.d
        return str(mapped) if mapped is not None else str(v6)
    if host.endswith("."):
        host = host[:-1]
    if host and _IPV4_SPELLING.fullmatch(host):
        # every spelling a resolver accepts for an IPv4 address (2852039166, 0xa9fea9fe,
        # 0251.0376.0251.0376, 169.254.43518) is judged as its dotted form
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    if not host or ".." in host or host.startswith("."):
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return host


def host_entry(entry: str) -> tuple[bool, str] | None:
    """(subdomains_only, host) for an allowlist entry, None if malformed."""
    sub = False
    if entry.startswith("*."):
        sub, entry = True, entry[2:]
    elif entry.startswith("."):
        sub, entry = True, entry[1:]
    host = normalize_host(entry)
    if host is None or _MAGIC.search(host) or "/" in host or "@" in host:
        return None
    return sub, host


def host_matches(host: str, entry: tuple[bool, str]) -> bool:
    sub, base = entry
    if sub:
        return host.endswith("." + base)
    return host == base


def entry_within(inner: tuple[bool, str], outer: tuple[bool, str]) -> bool:
    """Every host matching `inner` also matches `outer`."""
    if not outer[0]:
        return not inner[0] and inner[1] == outer[1]
    if inner[0]:
        return inner[1] == outer[1] or inner[1].endswith("." + outer[1])
    return inner[1].endswith("." + outer[1])


def url_host(value: str) -> str | None:
    """The normalised host of an absolute URL, None when not parseable (fail closed)."""
    if _FORBIDDEN_IN_NETLOC.search(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    host = parts.hostname
    if not host:
        return None
    return normalize_host(host)


def email_domain(value: str) -> str | None:
    if _FORBIDDEN_IN_NETLOC.search(value) or value.count("@") != 1:
        return None
    local, _, domain = value.partition("@")
    if not local or not domain or any(c in value for c in "<>,;\"()[]"):
        return None
    return normalize_host(domain)


def lexical_path(value: str) -> str:
    """The file a path names, as a filesystem resolves it lexically: `//` and `/./` collapsed,
    `..` applied, no trailing `/` (`<dir>/.env/` and `docs/../../x` are judged as what they
    open). Strings without a `/` are returned as they are."""
    if "/" not in value:
        return value
    p = posixpath.normpath(value)
    return "/" + p.lstrip("/") if p.startswith("//") else p


def canonical_path(value: str) -> str | None:
    """The path without a trailing slash when `value` is canonical (see module doc), else None."""
    if not value.startswith("/") or "\x00" in value:
        return None
    if "//" in value or "/./" in value or "/../" in value:
        return None
    if value.endswith("/.") or value.endswith("/.."):
        return None
    if len(value) > 1 and value.endswith("/"):
        return value[:-1]
    return value
