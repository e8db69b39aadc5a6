"""The judge, written once: is an event accepted, and if so, is it effective?

`judge(state, event)` checks, in this order, the event's signature (unless the caller
checked it already, on all cores), that it is the next link of its author's chain in
`state` (`LedgerState.check_link`), and then gives its verdict: the rules
(`LedgerState.evaluate`) and, for the two events that carry evidence, that the evidence
holds (a fork proof shows two signed events of one author and seq; a checkpoint
conflict shows two inconsistent checkpoints of one signer). It changes nothing: the
caller applies the verdict with `state.apply(event, reason)`.

The chain (appends, ingests and re-judging the stored log on open) and the audit
(`audit.verify_events`, and through it every bundle) call the same function, so an
event is valid in an audit exactly when a node accepts it with that verdict.

Pure: it reads `state` and the event's bytes, and does no I/O. Its source is part of the
judge snapshots' fingerprint (ledger/snapshot.py): editing it makes nodes judge their
logs again once rather than trust a snapshot of other rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EncodingError, LedgerError, SignatureError
from .checkpoint import CHECKPOINT_CONFLICT, CHECKPOINT_SIGNED, check_conflict
from .events import Event
from .identity import verify
from .rules import LedgerState
from .store import ForkProof

FORK_PROOF = "fork.proof"


def judge(state: LedgerState, event: Event, *, signature_checked: bool = False) -> str | None:
    """Why `event` has no effect after `state`, or None when it is effective.

    Raises SignatureError for a bad signature (not checked when `signature_checked`: the
    caller verified it in this run), ChainError (WrongNetwork) when the event is not the
    next link of its author's chain or is of another network. Changes nothing."""
    if not signature_checked and not event.verify_signature():
        raise SignatureError(f"bad signature on event {event.hash} by {event.author[:16]}… seq {event.seq}")
    state.check_link(event)
    return verdict(state, event)


def verdict(state: LedgerState, event: Event) -> str | None:
    """The verdict alone, for an event known to be signed and linked (a row of the local
    store, which was judged in full before it was stored)."""
    reason = state.evaluate(event)
    if reason is None and event.type in PROOF_TYPES and PROOF_TYPES[event.type](event.body, state.net) is None:
        return _NO_EVIDENCE[event.type]
    return reason


def fork_proof(a: Event, b: Event) -> ForkProof:
    """The proof that `a` and `b` (one author and seq, different hashes) are a fork, in a
    canonical order (by hash), so every node stores the same proof."""
    first, second = sorted((a, b), key=lambda e: e.hash)
    return ForkProof(first.author, first.seq, first.hash, first.raw, first.sig, second.hash, second.raw, second.sig)


def _signed(a: Event, b: Event) -> bool:
    return verify(a.author, bytes.fromhex(a.hash), a.sig) and verify(b.author, bytes.fromhex(b.hash), b.sig)


def parse_fork_proof(body: dict[str, Any], net: str | None = None) -> ForkProof | None:
    """Parse and check a gossiped proof: two validly signed, different events of one (author, seq)."""
    try:
        a, b = Event.from_json(body["a"]), Event.from_json(body["b"])
    except (LedgerError, EncodingError, KeyError, TypeError):
        return None
    if a.author != b.author or a.seq != b.seq or a.hash == b.hash:
        return None
    if a.author != body["author"] or a.seq != body["seq"]:
        return None
    if net is not None and (a.net != net or b.net != net):
        return None
    if not _signed(a, b):
        return None
    return fork_proof(a, b)


def parse_checkpoint_conflict(body: dict[str, Any], net: str | None = None) -> ForkProof | None:
    """Parse and check a gossiped checkpoint conflict: two validly signed `checkpoint.signed`
    events of one signer, `b` later in its chain, whose frontiers provably do not extend one
    another at `author` (see `checkpoint.check_conflict`). Returned as the fork proof that
    freezes the signer from `b`'s seq."""
    try:
        a, b = Event.from_json(body["a"]), Event.from_json(body["b"])
        if not (a.type == b.type == CHECKPOINT_SIGNED and a.author == b.author == body["signer"]):
            return None
        if not a.seq < b.seq == body["seq"]:
            return None
        if net is not None and (a.net != net or b.net != net):
            return None
        if not _signed(a, b):
            return None
        if check_conflict(a.body, b.body, body["author"], body["proof"], body.get("leaves")) is not None:
            return None
    except (LedgerError, EncodingError, KeyError, TypeError, ValueError, IndexError):
        return None
    return ForkProof(a.author, b.seq, a.hash, a.raw, a.sig, b.hash, b.raw, b.sig)


# The events whose evidence the judge checks, and the proof each freezes its subject with.
PROOF_TYPES: dict[str, Callable[[dict[str, Any], str | None], ForkProof | None]] = {
    FORK_PROOF: parse_fork_proof, CHECKPOINT_CONFLICT: parse_checkpoint_conflict}
_NO_EVIDENCE = {
    FORK_PROOF: "fork proof does not show two signed events of one author and seq",
    CHECKPOINT_CONFLICT: "checkpoint conflict does not show two inconsistent checkpoints of one signer"}
