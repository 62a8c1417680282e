"""Values as the provenance detector sees them: normalised, typed, split into fields.

Tool outputs (structured dicts from MCP, or YAML/JSON text) are flattened into fields. A field is
*free text* when its key names prose (body, content, subject, ...) or its value reads as prose
(whitespace, long); otherwise it is a *structured* identifier (a sender IBAN, an id, a channel
name in a list). Free text can be written by anyone who can put text in front of the agent; a
structured field is asserted by the system that produced the record.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import yaml

__all__ = [
    "Field",
    "norm",
    "norm_value",
    "value_kind",
    "embedded_tokens",
    "url_hosts",
    "norm_host",
    "host_forms",
    "iban_like",
    "flatten_output",
    "contains_value",
    "SENSITIVE_NAME_TOKENS",
    "is_sensitive_name",
]

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Bare domains (no scheme, no "www."): a host of letters/digits labels (Unicode labels too,
# after NFKC) and an ASCII top-level domain, not preceded by a path separator or a dot (so the
# "john.smith" of "/home/john.smith/docs" is not one). A well-known TLD counts on its own;
# any other TLD of 2+ letters only in a URL-ish context: followed by a path ("evil-site.ru/x").
# File names ("notes.txt", "main.py:42") and versions ("v1.2") are neither. The list leaves out
# TLDs that are common file extensions (md, py, sh, pl, zip, mov...) or English words (to, me,
# it, be, at, in, no, us...), which a missing space after a full stop would turn into a domain.
_KNOWN_TLDS = (
    "com|org|net|io|dev|ai|co|info|biz|app|xyz|gov|edu|ch|de|uk|fr|eu|ru|su|cn|tk|ml|ga|cf|gq|"
    "top|ly|gg|ca|nl|es|br|jp|au|se|dk|fi|ie|pt|ua|kz|ws|tv|fm|cx|pw|site|shop|store|club|"
    "cloud|tech|website"
)
_LABEL = r"[^\W_](?:[^\W_]|-)*"
_HOST = rf"(?<![/\\.~\w-]){_LABEL}(?:\.{_LABEL})*\."
_PATH = r"/[^\s<>\"'`)\]},;]*"
URL_RX = re.compile(
    r"\b[a-z][a-z0-9+.-]{0,15}://[^\s<>\"'`)\]},;]+|\bwww\.[^\s<>\"'`)\]},;]+"
    rf"|{_HOST}(?:{_KNOWN_TLDS})\b(?:{_PATH})?"
    rf"|{_HOST}(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})(?=/){_PATH}",
    re.I,
)
EMAIL_RX = re.compile(r"\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", re.I)
IBAN_RX = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b", re.I)
# A scheme URL up to the next space or quote: what an HTTP client is handed, userinfo included
# (URL_RX stops at ";" "," ")" ..., so "https://corp.example.com;@evil.ru/" would end early).
_SCHEME_URL_RX = re.compile(r"\b[a-z][a-z0-9+.-]{0,15}://[^\s<>\"'`]+", re.I)
_URL_END = ".,;:!?)]}>'\"*"
# Full stops that URL parsers (UTS 46) read as the dot between host labels
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_TRAIL = ".,;:!?/"

FREE_TEXT_KEYS = frozenset({
    "body", "content", "text", "message", "subject", "description", "note", "notes", "summary",
    "title", "comment", "comments", "html", "markdown", "snippet", "bio", "about", "memo",
})

# Argument names (split on _ - . and camelCase) that carry a destination, an identity, a
# location or a credential: the sensitive arguments recognised without a policy entry.
SENSITIVE_NAME_TOKENS = frozenset({
    "recipient", "recipients", "to", "cc", "bcc", "iban", "account", "url", "uri", "link", "href",
    "endpoint", "webhook", "email", "mail", "path", "file", "filepath", "filename", "dir",
    "directory", "command", "cmd", "script", "password", "passphrase", "destination", "dest",
    "host", "domain", "payee", "beneficiary", "receiver",
})

_SPLIT_RX = re.compile(r"[_\-.\s/]+|(?<=[a-z])(?=[A-Z])")


def is_sensitive_name(name: str) -> bool:
    return any(t.lower() in SENSITIVE_NAME_TOKENS for t in _SPLIT_RX.split(name) if t)


def norm(text: str) -> str:
    """Case-, width- and spacing-insensitive form used for every comparison."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def norm_value(value: str) -> str:
    """A value as compared: normalised, URLs without scheme and trailing slash."""
    v = norm(value)
    for scheme in ("https://", "http://"):
        if v.startswith(scheme):
            v = v[len(scheme):]
    return v.rstrip("/") if len(v) > 1 else v


def iban_like(token: str) -> bool:
    """An IBAN-shaped token: upper case as always; written in any other case only with a valid
    check digit pair (mod 97), so that lower-case hashes and ids are not taken for one (a bank
    refuses an IBAN whose check fails)."""
    t = token.replace(" ", "")
    if not IBAN_RX.fullmatch(t):
        return False
    if t.isupper():
        return True
    t = t.upper()
    try:
        return int("".join(str(int(c, 36)) for c in t[4:] + t[:4])) % 97 == 1
    except ValueError:
        return False


def _nfkc(text: str) -> str:
    if text.isascii():  # the common case, and NFKC leaves ASCII as it is
        return text
    return unicodedata.normalize("NFKC", text).translate(_DOTS)


def value_kind(value: str) -> str:
    v = _nfkc(value).strip()
    if "@" in v and EMAIL_RX.fullmatch(v):
        return "email"
    if iban_like(v):
        return "iban"
    if ("." in v or ":" in v) and (URL_RX.fullmatch(v) or _SCHEME_URL_RX.fullmatch(v)):
        return "url"
    if v.startswith(("/", "./", "~/")) or re.fullmatch(r"[\w.-]+\.[a-z0-9]{1,5}", v, re.I):
        return "path"
    return "text"


def embedded_tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, token) for every e-mail, URL and IBAN written inside a longer string, found in
    its NFKC form (a fullwidth "ｅｖｉｌ．ｃｏｍ" is "evil.com"); IBANs in upper case."""
    text = _nfkc(text)
    emails = set()
    if "@" in text:
        for m in EMAIL_RX.finditer(text):
            emails.add(m.group(0))
            yield "email", m.group(0)
    if "." in text or ":" in text:  # every URL has a dot or "://"
        for m in URL_RX.finditer(text):
            tok = m.group(0).rstrip(_TRAIL)
            if any(tok in e or e.endswith(tok) for e in emails):
                continue
            yield "url", tok
    for m in IBAN_RX.finditer(text):
        if iban_like(m.group(0)):
            yield "iban", m.group(0).upper()


def norm_host(host: str) -> str:
    """A host name as compared: NFKC, ideographic full stops as dots, case-folded, punycode
    labels decoded ("xn--bcher-kva.de" is "bücher.de"), no trailing dot."""
    h = unicodedata.normalize("NFKC", host).translate(_DOTS).casefold().strip().rstrip(".")
    labels = []
    for label in h.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def host_forms(host: str) -> tuple[str, ...]:
    """The normalised host and, for a Unicode host, its ASCII (punycode) spelling."""
    h = norm_host(host)
    forms = [h]
    if not h.isascii():
        try:
            forms.append(h.encode("idna").decode("ascii"))
        except (UnicodeError, ValueError):
            pass
    return tuple(forms)


def url_hosts(text: str) -> Iterator[tuple[str, str | None, bool]]:
    """(url, host, userinfo) for every "scheme://" URL inside `text` (NFKC form), parsed the
    way an HTTP client parses it: in "https://corp.example.com;@evil.ru/x" the host is
    "evil.ru" and "corp.example.com;" is userinfo. userinfo is True when an "@" stands before
    the host; host is None when there is none, or when the URL cannot be parsed (userinfo is
    then True as well: nothing shows where it leads)."""
    text = _nfkc(text)
    if "://" not in text:
        return
    for m in _SCHEME_URL_RX.finditer(text):
        url = m.group(0).rstrip(_URL_END)
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            yield url, None, True  # unparseable: nothing vouches for its destination
            continue
        userinfo = "@" in parts.netloc
        yield url, (norm_host(host) if host else None), userinfo


@dataclass(frozen=True, slots=True)
class Field:
    path: str
    value: str  # normalised
    free_text: bool


def _is_prose(key: str, value: str) -> bool:
    last = key.rsplit(".", 1)[-1].rstrip("]").split("[")[0].lower()
    if last in FREE_TEXT_KEYS:
        return True
    return len(value) > 64 or len(value.split()) > 1  # whitespace inside the stripped value


def _walk(obj: Any, path: str, out: list[Field], depth: int) -> None:
    if depth > 12 or len(out) > 5000:
        return
    t = type(obj)  # exact-type checks first: the ABC isinstance is the slow part of a walk
    if t is dict or (t is not str and t is not list and isinstance(obj, Mapping)):
        for k, v in obj.items():
            _walk(v, f"{path}.{k}" if path else str(k), out, depth + 1)
    elif t is list or isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{path}[{i}]", out, depth + 1)
    elif isinstance(obj, str):
        if obj.strip():
            prose = _is_prose(path, obj)
            out.append(Field(path, norm(obj) if prose else norm_value(obj), prose))
    elif obj is None or isinstance(obj, bool):
        return
    else:
        out.append(Field(path, norm(str(obj)), False))


def _parse_text(text: str) -> Any:
    s = text.strip()
    if not s:
        return None
    if s[0] in "[{":
        try:
            return json.loads(s)
        except ValueError:
            pass
    if "\n" in s or s.startswith("- ") or ": " in s:
        try:
            doc = yaml.load(s, Loader=_SAFE_LOADER)  # noqa: S506 - safe loader
        except yaml.YAMLError:
            return text
        if isinstance(doc, (Mapping, list)):
            return doc
    return text


def flatten_output(output: Any) -> list[Field]:
    """Field-level values of a tool output (structured data, or JSON/YAML text, or prose)."""
    if isinstance(output, (bytes, bytearray)):
        output = output.decode("utf-8", "replace")
    if isinstance(output, Mapping) and "structured_content" in output:
        output = output.get("structured_content") or output.get("content")
    doc = _parse_text(output) if isinstance(output, str) else output
    fields: list[Field] = []
    if isinstance(doc, str):
        if doc.strip():
            fields.append(Field("", norm(doc), True))
    else:
        _walk(doc, "", fields, 0)
    return fields


def _boundary(c: str) -> bool:
    return not (c.isalnum() or c in "_@")


def contains_value(text: str, value: str) -> bool:
    """`value` occurs in `text` as a whole token (not inside a longer word or identifier)."""
    if not value:
        return False
    start = text.find(value)
    n = len(value)
    while start >= 0:
        before = text[start - 1] if start > 0 else " "
        after = text[start + n] if start + n < len(text) else " "
        if _boundary(before) and (_boundary(after) or after in ".,;:!?/"):
            return True
        start = text.find(value, start + 1)
    return False
