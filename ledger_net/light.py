"""The light client: checks proofs about the ledger holding no database at all.

A light client keeps the network's genesis hash and, later, the witness keys it trusts.
This module verifies what a node hands it, from bytes alone:

* `verify_event_inclusion`: an event (its wire form `{"raw", "sig"}`, or just its hash)
  is the event at its seq in its author's chain, whose Merkle root at a size is known;
* `verify_author_consistency`: an author's chain at one size is a prefix of the chain at
  a larger size (the author, and the node that serves it, only ever appended).

Each returns a `Verdict` (ok, reasons); nothing here raises on any input. It imports
only hashlib, nacl, canonical decoding and the pure Merkle verifier: never the store.

Extension points (issue 14, not built yet): where the chain root and size come from. Today
the caller supplies them; a cosigned checkpoint (`checkpoint.signed` + `checkpoint.cosigned`,
a threshold k of trusted witnesses) will vouch for them, and a balance proof will check a
leaf of the checkpoint's state root with the same `merkle_verify.check_inclusion`. Those
verifiers belong here, returning the same `Verdict`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing

from .ledger.encoding import decode
from .ledger.merkle_verify import (
    as_hash,
    check_consistency,
    check_inclusion,
    event_leaf_hash,
)

__all__ = ["Verdict", "verify_author_consistency", "verify_event_inclusion"]


@dataclass(frozen=True)
class Verdict:
    """What a check concluded: `ok`, and when not, every reason found (one line each)."""

    ok: bool
    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return "OK" if self.ok else "; ".join(self.reasons)


def _verdict(checks: Sequence[Callable[[], str | None]]) -> Verdict:
    """Run each check (returns a reason, or None when it passes); gather every reason."""
    reasons: list[str] = []
    for check in checks:
        try:
            reason = check()
        except Exception as exc:  # noqa: BLE001 - a verdict, never a trace: any failure is a reason
            reason = str(exc) or type(exc).__name__
        if reason:
            reasons.append(reason)
    return Verdict(not reasons, reasons)


def _envelope(event: Any) -> tuple[bytes, dict[str, Any], bytes | None]:
    """(canonical bytes, envelope, signature or None) of a wire event {"raw": text, "sig": hex}."""
    if not isinstance(event, Mapping):
        raise TypeError('an event is {"raw": "<canonical json>", "sig": "<hex>"}')
    raw, sig = event.get("raw"), event.get("sig")
    try:
        raw_bytes = raw.encode("utf-8") if isinstance(raw, str) else raw
    except UnicodeError:
        raise ValueError("the event's raw text is not UTF-8") from None
    if not isinstance(raw_bytes, (bytes, bytearray)):
        raise TypeError("the event's raw bytes are missing")
    env = decode(bytes(raw_bytes))
    if not isinstance(env, dict):
        raise TypeError("the event is not a JSON object")
    signature = None
    if isinstance(sig, str):
        try:
            signature = bytes.fromhex(sig)
        except ValueError:
            raise ValueError("the event's signature is not hex") from None
    elif isinstance(sig, (bytes, bytearray)):
        signature = bytes(sig)
    elif sig is not None:
        raise TypeError("the event's signature is neither hex nor bytes")
    return bytes(raw_bytes), env, signature


def verify_event_inclusion(*, chain_size: int, chain_root: Any, proof: Any, event: Any = None,
                           event_hash: Any = None, author: str | None = None, seq: int | None = None,
                           net: str | None = None) -> Verdict:
    """Is this event the one at its seq in its author's chain of `chain_size` events whose
    Merkle root is `chain_root`?

    Give the event in wire form (`event={"raw", "sig"}`: its hash, author, seq and, when
    present, signature are checked from its bytes) or only `event_hash` with `author` and
    `seq`. `author`, `seq`, `event_hash` and `net` (the genesis hash), when given beside
    the event, must match it."""
    state: dict[str, Any] = {"hash": None, "author": author, "seq": seq}

    def event_itself() -> str | None:
        if event is None:
            if event_hash is None or author is None or seq is None:
                return "give the event, or its hash with its author and seq"
            state["hash"] = as_hash(event_hash, "event hash")
            return None
        raw, env, sig = _envelope(event)
        digest = hashlib.sha256(raw).digest()
        state["hash"] = digest
        problems = []
        if event_hash is not None and as_hash(event_hash, "event hash") != digest:
            problems.append("the event's bytes do not hash to the event hash given")
        for key in ("author", "seq"):
            if state[key] is not None and env.get(key) != state[key]:
                problems.append(f"the event's {key} is {env.get(key)!r}, not {state[key]!r}")
            state[key] = env.get(key)
        if net is not None and env.get("net") not in (net, ""):
            problems.append("the event belongs to another network")
        if sig is not None:
            try:
                nacl.signing.VerifyKey(bytes.fromhex(str(env.get("author")))).verify(digest, sig)
            except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
                problems.append("the event's signature does not verify under its author's key")
        return "; ".join(problems) or None

    def inclusion() -> str | None:
        if state["hash"] is None:
            return None  # already reported
        s = state["seq"]
        if type(s) is not int or s < 1:
            return f"seq {s!r} is not a positive integer"
        check_inclusion(s - 1, chain_size, event_leaf_hash(state["hash"]), proof, chain_root)
        return None

    return _verdict([event_itself, inclusion])


def verify_author_consistency(*, old_size: int, old_root: Any, new_size: int, new_root: Any,
                              proof: Any) -> Verdict:
    """Is an author's chain of `old_size` events (root `old_root`) a prefix of its chain of
    `new_size` events (root `new_root`)? A failure between two roots of one author, both
    vouched for, is evidence that someone rewrote or split the chain."""
    return _verdict([lambda: check_consistency(old_size, new_size, old_root, new_root, proof)])
