"""The audit chain: record hashing, signed checkpoints, offline verification, reading helpers.

Pure logic shared by every AuditLog backend. The format is fixed (other backends and
`jitgate audit verify` depend on it):

- record body = {seq, event_id, ts, type, actor, grant_id, decision_id, data, prev_hash};
  hash = sha256_hex(canonical_json(body)) (RFC 8785); the first prev_hash is GENESIS.
- checkpoint payload = {seq, hash, ts, kid}; sig = Ed25519 over canonical_json(payload),
  stored base64url without padding. A writer signs one at every multiple of its
  `checkpoint_every` (and the head when it closes); the signed data does not name the interval,
  so the verifier is told it (`checkpoint_every`) to find the checkpoints that were removed.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import math
from dataclasses import dataclass, field
from typing import IO, Any, AsyncIterator, Iterable, Iterator, Mapping, Protocol, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .digest import canonical_json, sha256_hex
from .ports import AuditEvent, AuditLog, AuditRecord

__all__ = [
    "GENESIS",
    "Signer",
    "Checkpoint",
    "VerifyProblem",
    "VerifyReport",
    "record_body",
    "record_hash",
    "seal",
    "check_event",
    "record_from_dict",
    "checkpoint_payload",
    "make_checkpoint",
    "verify_checkpoint",
    "verify_chain",
    "missing_checkpoints",
    "read_audit",
    "follow",
    "last_records",
    "export_jsonl",
    "load_jsonl",
    "b64url",
    "b64url_decode",
]

GENESIS = "0" * 64


class Signer(Protocol):
    """Signs checkpoints with the gateway's Ed25519 key."""

    kid: str

    def sign(self, data: bytes) -> bytes: ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def record_body(seq: int, event_id: str, ts: float, event: AuditEvent | AuditRecord,
                prev_hash: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "event_id": event_id,
        "ts": ts,
        "type": event.type,
        "actor": event.actor,
        "grant_id": event.grant_id,
        "decision_id": event.decision_id,
        "data": dict(event.data),
        "prev_hash": prev_hash,
    }


def record_hash(record: AuditRecord) -> str:
    """The hash a record's body implies (equals `record.hash` unless it was tampered with)."""
    body = record_body(record.seq, record.event_id, record.ts, record, record.prev_hash)
    return sha256_hex(canonical_json(body))


def seal(event: AuditEvent, seq: int, prev_hash: str, ts: float, event_id: str) -> AuditRecord:
    """Chain one event after (seq - 1, prev_hash)."""
    ts = float(ts)
    body = record_body(seq, event_id, ts, event, prev_hash)
    digest = sha256_hex(canonical_json(body))
    return AuditRecord(seq=seq, event_id=event_id, ts=ts, type=event.type, actor=event.actor,
                       grant_id=event.grant_id, decision_id=event.decision_id,
                       data=body["data"], prev_hash=prev_hash, hash=digest)


def check_event(event: AuditEvent) -> None:
    """Raise ValueError if the event cannot be hashed (not JSON, NaN, non-str keys)."""
    if not isinstance(event.type, str) or not event.type:
        raise ValueError("audit event type must be a non-empty string")
    if not isinstance(event.ts, (int, float)) or not math.isfinite(event.ts):
        raise ValueError("audit event ts must be a finite number")
    try:
        canonical_json({"data": dict(event.data), "actor": event.actor,
                        "grant_id": event.grant_id, "decision_id": event.decision_id})
    except Exception as exc:  # rfc8785 raises several types
        raise ValueError("audit event data is not canonical JSON") from exc


def record_from_dict(d: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(seq=int(d["seq"]), event_id=str(d["event_id"]), ts=d["ts"],
                       type=str(d["type"]), actor=str(d["actor"]), grant_id=d.get("grant_id"),
                       decision_id=d.get("decision_id"), data=dict(d.get("data") or {}),
                       prev_hash=str(d["prev_hash"]), hash=str(d["hash"]))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    ts: float
    kid: str
    sig: str  # base64url (no padding) Ed25519 signature of canonical_json(payload)

    def payload(self) -> dict[str, Any]:
        return checkpoint_payload(self.seq, self.hash, self.ts, self.kid)

    def as_dict(self) -> dict[str, Any]:
        return {**self.payload(), "sig": self.sig}


def checkpoint_payload(seq: int, hash_: str, ts: float, kid: str) -> dict[str, Any]:
    return {"seq": seq, "hash": hash_, "ts": ts, "kid": kid}


def make_checkpoint(signer: Signer, seq: int, hash_: str, ts: float) -> Checkpoint:
    payload = checkpoint_payload(seq, hash_, ts, signer.kid)
    return Checkpoint(seq=seq, hash=hash_, ts=ts, kid=signer.kid,
                      sig=b64url(signer.sign(canonical_json(payload))))


def verify_checkpoint(cp: Checkpoint, public_keys: Mapping[str, Ed25519PublicKey]) -> bool:
    key = public_keys.get(cp.kid)
    if key is None:
        return False
    try:
        key.verify(b64url_decode(cp.sig), canonical_json(cp.payload()))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    seq: int
    # modified | deleted | inserted | reordered | truncated | bad_checkpoint | missing_checkpoint
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    count: int
    head_seq: int
    head_hash: str
    problems: list[VerifyProblem] = field(default_factory=list)
    checkpoints: int = 0
    uncovered: int = 0  # records after the last good checkpoint: signed by none (not a problem)
    checkpoint_every: int | None = None  # the interval checked (None: not checked)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "count": self.count, "head_seq": self.head_seq,
                "head_hash": self.head_hash, "checkpoints": self.checkpoints,
                "uncovered": self.uncovered, "checkpoint_every": self.checkpoint_every,
                "problems": [p.as_dict() for p in self.problems]}


def _in_order(seqs: Sequence[int]) -> set[int]:
    """Indices of one longest strictly increasing subsequence (the records kept in place)."""
    tails: list[int] = []
    tail_idx: list[int] = []
    parent = [-1] * len(seqs)
    for i, s in enumerate(seqs):
        k = bisect.bisect_left(tails, s)
        if k == len(tails):
            tails.append(s)
            tail_idx.append(i)
        else:
            tails[k] = s
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k > 0 else -1
    keep: set[int] = set()
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        keep.add(i)
        i = parent[i]
    return keep


def missing_checkpoints(head_seq: int, checkpoints: Iterable[Checkpoint],
                        every: int) -> list[VerifyProblem]:
    """One `missing_checkpoint` per run of multiples of `every` up to `head_seq` that have no
    checkpoint at all (one present but invalid is a `bad_checkpoint`)."""
    have = {cp.seq for cp in checkpoints}
    gone = [s for s in range(every, head_seq + 1, every) if s not in have] if every > 0 else []
    runs = [i for i, s in enumerate(gone) if i == 0 or gone[i - 1] != s - every] + [len(gone)]
    problems: list[VerifyProblem] = []
    for a, b in zip(runs, runs[1:]):
        names = str(gone[a]) if b - a == 1 else f"{gone[a]}..{gone[b - 1]}"
        problems.append(VerifyProblem(gone[a], "missing_checkpoint",
                                      f"no signed checkpoint at seq {names} (one is written "
                                      f"every {every} records): deleted, and the records after "
                                      "them may have been rewritten"))
    return problems


def verify_chain(records: Iterable[AuditRecord], checkpoints: Sequence[Checkpoint] = (),
                 public_keys: Mapping[str, Ed25519PublicKey] | None = None,
                 checkpoint_every: int | None = None) -> VerifyReport:
    """Check a chain given in stored (physical) order; name every problem found. With the
    writer's `checkpoint_every`, a checkpoint missing at a multiple of it is one too (else the
    records after deleted checkpoints could be rewritten and re-chained unnoticed)."""
    recs = list(records)
    keys = public_keys or {}
    problems: list[VerifyProblem] = []
    consistent = [r.hash == record_hash(r) for r in recs]
    for r, ok in zip(recs, consistent):
        if not ok:
            problems.append(VerifyProblem(r.seq, "modified",
                                          f"record seq {r.seq} does not match its hash"))
    by_seq: dict[int, list[int]] = {}
    for i, r in enumerate(recs):
        by_seq.setdefault(r.seq, []).append(i)
    inserted: set[int] = set()
    for seq, idxs in by_seq.items():
        if len(idxs) < 2:
            continue
        succ = {recs[j].prev_hash for j in by_seq.get(seq + 1, [])}
        genuine = next((i for i in idxs if recs[i].hash in succ and consistent[i]), idxs[0])
        for i in idxs:
            if i != genuine:
                inserted.add(i)
                problems.append(VerifyProblem(seq, "inserted",
                                              f"extra record with duplicate seq {seq} "
                                              f"(event_id {recs[i].event_id})"))
    kept = [i for i in range(len(recs)) if i not in inserted]
    in_place = _in_order([recs[i].seq for i in kept])
    for pos, i in enumerate(kept):
        if pos not in in_place:
            problems.append(VerifyProblem(recs[i].seq, "reordered",
                                          f"record seq {recs[i].seq} is stored out of order"))
    ordered = sorted(kept, key=lambda i: recs[i].seq)
    all_hashes = {r.hash: r.seq for r in recs}
    expected = 1
    prev: int | None = None
    for i in ordered:
        r = recs[i]
        if r.seq > expected:
            last = r.seq - 1
            names = str(expected) if last == expected else f"{expected}..{last}"
            problems.append(VerifyProblem(expected, "deleted", f"missing record seq {names}"))
        elif r.seq < 1:
            problems.append(VerifyProblem(r.seq, "inserted", f"invalid seq {r.seq}"))
        contiguous = r.seq == 1 or (prev is not None and recs[prev].seq == r.seq - 1)
        if contiguous and consistent[i] and (prev is None or consistent[prev]):
            want = GENESIS if r.seq == 1 else recs[prev].hash  # type: ignore[index]
            if r.prev_hash != want:
                other = all_hashes.get(r.prev_hash)
                if other is not None:
                    problems.append(VerifyProblem(r.seq, "reordered",
                                                  f"record seq {r.seq} links to seq {other}, "
                                                  "not to its predecessor"))
                elif prev is not None:
                    problems.append(VerifyProblem(r.seq, "inserted",
                                                  f"record seq {r.seq} does not link to record "
                                                  f"seq {recs[prev].seq}: one of them was forged "
                                                  "or rewritten with a recomputed hash"))
                else:
                    problems.append(VerifyProblem(r.seq, "inserted",
                                                  "the first record does not start the chain"))
        expected = max(expected, r.seq + 1)
        prev = i
    head_seq = recs[ordered[-1]].seq if ordered else 0
    head_hash = recs[ordered[-1]].hash if ordered else GENESIS
    genuine_by_seq = {recs[i].seq: recs[i] for i in ordered}
    beyond = [cp for cp in checkpoints if cp.seq > head_seq]
    covered = 0  # the last seq a valid checkpoint vouches for
    for cp in checkpoints:
        if not verify_checkpoint(cp, keys):
            why = "unknown key" if cp.kid not in keys else "invalid signature"
            problems.append(VerifyProblem(cp.seq, "bad_checkpoint",
                                          f"checkpoint at seq {cp.seq}: {why}"))
            continue
        rec = genuine_by_seq.get(cp.seq)
        if rec is not None and rec.hash != cp.hash:
            problems.append(VerifyProblem(cp.seq, "bad_checkpoint",
                                          f"checkpoint at seq {cp.seq} names another hash "
                                          "than the record"))
        elif rec is not None:
            covered = max(covered, cp.seq)
    if checkpoint_every is not None:
        problems.extend(missing_checkpoints(head_seq, checkpoints, checkpoint_every))
    if beyond:
        top = max(cp.seq for cp in beyond)
        problems.append(VerifyProblem(head_seq + 1, "truncated",
                                      f"a checkpoint names seq {top} but the last record is "
                                      f"seq {head_seq}: records {head_seq + 1}..{top} are gone"))
    problems.sort(key=lambda p: p.seq)
    return VerifyReport(ok=not problems, count=len(recs), head_seq=head_seq,
                        head_hash=head_hash, problems=problems, checkpoints=len(checkpoints),
                        uncovered=head_seq - covered, checkpoint_every=checkpoint_every)


async def read_audit(log: AuditLog, after_seq: int = 0, limit: int | None = None,
                     grant_id: str | None = None, decision_id: str | None = None,
                     page: int = 1000) -> AsyncIterator[AuditRecord]:
    """Every record after `after_seq` (optionally filtered), paging through `log.read`."""
    left = limit
    cursor = after_seq
    while left is None or left > 0:
        n = page if left is None else min(page, left)
        batch = await log.read(after_seq=cursor, limit=n, grant_id=grant_id,
                               decision_id=decision_id)
        for rec in batch:
            yield rec
        if len(batch) < n:
            return
        cursor = batch[-1].seq
        if left is not None:
            left -= len(batch)


async def follow(log: AuditLog, after_seq: int = 0, poll_s: float = 1.0,
                 stop: asyncio.Event | None = None) -> AsyncIterator[AuditRecord]:
    """Yield records as they are appended (`jitgate audit tail -f`), until `stop` is set."""
    cursor = after_seq
    while stop is None or not stop.is_set():
        batch = await log.read(after_seq=cursor, limit=1000)
        for rec in batch:
            yield rec
            cursor = rec.seq
        if not batch:
            if stop is None:
                await asyncio.sleep(poll_s)
                continue
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
            except asyncio.TimeoutError:
                pass


async def last_records(log: AuditLog, n: int = 20) -> list[AuditRecord]:
    """The newest `n` records, oldest first (for `jitgate audit tail`)."""
    head_seq, _ = await log.head()
    return await log.read(after_seq=max(0, head_seq - n), limit=n)


async def export_jsonl(log: AuditLog, fp: IO[str], after_seq: int = 0) -> int:
    """Write records as JSON Lines (canonical JSON, one record a line); return the count."""
    count = 0
    async for rec in read_audit(log, after_seq=after_seq):
        fp.write(canonical_json(rec.as_dict()).decode("utf-8"))
        fp.write("\n")
        count += 1
    return count


def load_jsonl(fp: IO[str]) -> Iterator[AuditRecord]:
    """Records from an export, in file order (feed to verify_chain)."""
    for line in fp:
        if line.strip():
            yield record_from_dict(json.loads(line))
