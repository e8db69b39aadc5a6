"""The light client: checks proofs about the ledger holding no database at all.

A light client keeps the network's genesis hash and, later, the witness keys it trusts.
This module verifies what a node hands it, from bytes alone:

* `verify_event_inclusion`: an event (its wire form `{"raw", "sig"}`, or just its hash)
  is the event at its seq in its author's chain, whose Merkle root at a size is known;
* `verify_author_consistency`: an author's chain at one size is a prefix of the chain at
  a larger size (the author, and the node that serves it, only ever appended).

Each returns a `Verdict` (ok, reasons); nothing here raises on any input. It imports
only hashlib, nacl, canonical decoding and the pure Merkle verifier: never the store.

Against a checkpoint (a note signed by its signer and cosigned by witnesses; see
docs/proofs.md), given the genesis hash `net`, the trusted witness keys and a threshold k:

* `verify_checkpoint`: the note is of this network, its signature is the signer's, every
  cosignature verifies, and at least k distinct trusted keys signed it (the signer counts
  when it is itself trusted);
* `verify_balance`: an account's state leaf is in a cosigned checkpoint's state root;
* `verify_event`: an event is in its author's chain as a cosigned checkpoint names it;
* `verify_checkpoint_consistency`: an author's chain in one cosigned checkpoint is a
  prefix of its chain in a later one;
* `verify_checkpoint_update`: a new cosigned checkpoint against the client's last known
  one (same network, nothing shrank, the named authors only grew);
* `verify_absence`: an account has no state leaf in a cosigned checkpoint's state root
  (its two neighbours in key order are adjacent leaves), so it held nothing there;
* `verify_proof`: any of the proof documents above, by its `type`.

Proof documents come in version 2 (`"v": 2`, base64url, what nodes send) or version 1
(hex, no `v`); `ledger.proof_codec.expand` turns the first into the second before any check.

One module, about 400 lines, on purpose: every check a light client makes is here, over a
few pure helpers (errors, encoding, merkle_verify, checkpoint, proof_codec) and no store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nacl.exceptions
import nacl.signing

from .errors import ProofError
from .ledger.checkpoint import (
    ACCOUNT,
    check_absence,
    check_frontier_leaf,
    check_note,
    check_state_leaf,
    cosign_message,
    note_digest,
    signature_ok,
)
from .ledger.encoding import decode
from .ledger.merkle_verify import (
    as_hash,
    check_consistency,
    check_inclusion,
    event_leaf_hash,
)
from .ledger.proof_codec import expand

__all__ = ["Verdict", "verify_absence", "verify_author_consistency", "verify_balance", "verify_checkpoint",
           "verify_checkpoint_consistency", "verify_checkpoint_update", "verify_event", "verify_event_inclusion",
           "verify_proof"]


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


# ---------------------------------------------------------------------- checkpoints
def _trust(witnesses: Any, threshold: Any) -> tuple[frozenset[str], int]:
    if isinstance(witnesses, (str, bytes)) or not isinstance(witnesses, (list, tuple, set, frozenset)):
        raise ProofError("witnesses are a list of hex keys")
    keys = frozenset(as_hash(w, "witness key").hex() for w in witnesses)
    if type(threshold) is not int or not 1 <= threshold <= len(keys):
        raise ProofError(f"threshold {threshold!r} is not between 1 and the {len(keys)} witness key(s) given")
    return keys, threshold


def _checkpoint(checkpoint: Any, net: Any, witnesses: Any, threshold: Any) -> dict[str, Any]:
    """The note of a cosigned checkpoint that meets the trust rule; ProofError naming why not."""
    keys, k = _trust(witnesses, threshold)
    if not isinstance(checkpoint, Mapping) or set(checkpoint) != {"note", "sig", "cosignatures"}:
        raise ProofError("checkpoint is not {note, sig, cosignatures}")
    note = check_note(checkpoint["note"], as_hash(net, "genesis").hex())
    digest = note_digest(note)
    if not signature_ok(note["signer"], digest, checkpoint["sig"]):
        raise ProofError("checkpoint signature does not verify under its signer's key")
    signed = {note["signer"]} & keys
    untrusted, message = [], cosign_message(digest)
    cosigs = checkpoint["cosignatures"]
    if not isinstance(cosigs, list):
        raise ProofError("cosignatures are not a list")
    for i, item in enumerate(cosigs):
        if not isinstance(item, Mapping) or set(item) != {"witness", "sig"}:
            raise ProofError(f"cosignature {i} is not {{witness, sig}}")
        witness = as_hash(item["witness"], f"cosignature {i} witness").hex()
        if not signature_ok(witness, message, item["sig"]):
            raise ProofError(f"cosignature {i} (by {witness[:16]}…) does not verify")
        if witness in keys:
            signed.add(witness)
        else:
            untrusted.append(witness[:16] + "…")
    if len(signed) < k:
        extra = f"; not trusted witnesses: {', '.join(untrusted)}" if untrusted else ""
        raise ProofError(f"threshold not met: {len(signed)} of the {k} trusted signatures required{extra}")
    return note


def verify_checkpoint(checkpoint: Any, *, net: Any, witnesses: Any, threshold: Any) -> Verdict:
    """Is this cosigned checkpoint of network `net` signed by at least `threshold` of the
    trusted `witnesses` (the signer counts if trusted), with every signature valid?"""
    def check() -> None:
        _checkpoint(checkpoint, net, witnesses, threshold)

    return _verdict([check])


def _fields(proof: Any, kind: str, names: set[str]) -> Mapping[str, Any]:
    if not isinstance(proof, Mapping):
        raise ProofError("the proof is not a JSON object")
    if proof.get("type") != kind:
        raise ProofError(f"the proof's type is {proof.get('type')!r}, not {kind!r}")
    if set(proof) != names | {"type"}:
        raise ProofError(f"a {kind} proof has the fields {sorted(names | {'type'})}")
    return proof


def _expanded(proof: Any) -> tuple[Any, Verdict | None]:
    """(version 1 form of `proof`, None), or (None, the failed verdict) when it cannot be decoded."""
    try:
        return expand(proof), None
    except Exception as exc:  # noqa: BLE001 - a verdict, never a trace
        return None, Verdict(False, [str(exc) or type(exc).__name__])


def verify_balance(proof: Any, *, net: Any, witnesses: Any, threshold: Any, account: str | None = None) -> Verdict:
    """Is the proof's account entry (balance, escrow, incoming, vouchers) the one in the state
    root of a checkpoint cosigned by `threshold` trusted witnesses? `account`, when given,
    must be the proof's."""
    state: dict[str, Any] = {}
    proof, failed = _expanded(proof)
    if failed is not None:
        return failed

    def checkpoint() -> None:
        p = _fields(proof, "balance", {"account", "checkpoint", "leaf", "proof"})
        if account is not None and p["account"] != account:
            raise ProofError(f"the proof is for account {str(p['account'])[:16]}…, not {account[:16]}…")
        as_hash(p["account"], "account")
        state["note"] = _checkpoint(p["checkpoint"], net, witnesses, threshold)

    def leaf() -> None:
        if "note" in state:
            try:
                check_state_leaf(state["note"], ACCOUNT + proof["account"], proof["leaf"], proof["proof"])
            except ProofError as exc:
                raise ProofError(f"account leaf not in the checkpoint's state root: {exc}") from None

    return _verdict([checkpoint, leaf])


def verify_absence(proof: Any, *, net: Any, witnesses: Any, threshold: Any, account: str | None = None) -> Verdict:
    """Has the proof's account no entry in the state root of a checkpoint cosigned by
    `threshold` trusted witnesses (so its balance, escrow, incoming and vouchers were all 0
    there)? `account`, when given, must be the proof's."""
    state: dict[str, Any] = {}
    proof, failed = _expanded(proof)
    if failed is not None:
        return failed

    def checkpoint() -> None:
        p = _fields(proof, "absence", {"account", "checkpoint", "left", "right"})
        if account is not None and p["account"] != account:
            raise ProofError(f"the proof is for account {str(p['account'])[:16]}…, not {account[:16]}…")
        as_hash(p["account"], "account")
        state["note"] = _checkpoint(p["checkpoint"], net, witnesses, threshold)

    def neighbours() -> None:
        if "note" in state:
            check_absence(state["note"], ACCOUNT + proof["account"], proof["left"], proof["right"])

    return _verdict([checkpoint, neighbours])


def verify_event(proof: Any, *, net: Any, witnesses: Any, threshold: Any) -> Verdict:
    """Is the proof's event in its author's chain, at the size and root a cosigned
    checkpoint names for that author?"""
    p: Any = None
    state: dict[str, Any] = {}
    proof, failed = _expanded(proof)
    if failed is not None:
        return failed

    def checkpoint() -> None:
        nonlocal p
        p = _fields(proof, "event", {"checkpoint", "author", "event", "proof"})
        state["note"] = _checkpoint(p["checkpoint"], net, witnesses, threshold)

    def inclusion() -> str | None:
        if "note" not in state:
            return None
        _, env, _ = _envelope(p["event"])
        size, root = check_frontier_leaf(state["note"], str(env.get("author")), p["author"])
        verdict = verify_event_inclusion(chain_size=size, chain_root=root, proof=p["proof"], event=p["event"],
                                         net=state["note"]["net"])
        return None if verdict.ok else str(verdict)

    return _verdict([checkpoint, inclusion])


def _growth(p: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    author = as_hash(p["author"], "author").hex()
    old_size, old_root = check_frontier_leaf(old, author, p["old_leaf"])
    new_size, new_root = check_frontier_leaf(new, author, p["new_leaf"])
    check_consistency(old_size, new_size, old_root, new_root, p["proof"])


_GROWTH = {"author", "old", "new", "old_leaf", "new_leaf", "proof"}


def verify_checkpoint_consistency(proof: Any, *, net: Any, witnesses: Any, threshold: Any) -> Verdict:
    """Is the author's chain in the old cosigned checkpoint a prefix of its chain in the new one?"""
    proof, failed = _expanded(proof)
    if failed is not None:
        return failed

    def check() -> None:
        p = _fields(proof, "author_consistency", _GROWTH)
        old = _checkpoint(p["old"], net, witnesses, threshold)
        new = _checkpoint(p["new"], net, witnesses, threshold)
        _growth(p, old, new)

    return _verdict([check])


def verify_checkpoint_update(last: Any, new: Any, *, net: Any, witnesses: Any, threshold: Any,
                             growth: Sequence[Any] = ()) -> Verdict:
    """May the client move from its last known checkpoint `last` (a note it trusts, or a
    cosigned checkpoint) to `new` (a cosigned checkpoint)? Same network, no fewer events or
    authors, not older; one signer's two notes with equal event counts must be one frontier;
    and each `growth` proof (author_consistency from `last` to `new`) holds."""
    state: dict[str, Any] = {}

    def notes() -> None:
        genesis = as_hash(net, "genesis").hex()
        old = last.get("note") if isinstance(last, Mapping) and "note" in last else last
        state["old"] = check_note(old, genesis)
        state["new"] = _checkpoint(new, net, witnesses, threshold)

    def order() -> str | None:
        if "new" not in state:
            return None
        old, cur = state["old"], state["new"]
        problems = [f"{f} went from {old[f]} down to {cur[f]}" for f in ("events", "authors", "ts") if cur[f] < old[f]]
        if old["signer"] == cur["signer"] and old["events"] == cur["events"] and \
                old["frontier_root"] != cur["frontier_root"]:
            problems.append("one signer named two frontiers of the same size")
        return "; ".join(problems) or None

    def grew() -> str | None:
        if "new" not in state:
            return None
        problems = []
        for i, item in enumerate(growth):
            try:
                p = _fields(expand(item), "author_consistency", _GROWTH)
                if check_note(p["old"].get("note"), state["old"]["net"]) != state["old"] or \
                        check_note(p["new"].get("note"), state["new"]["net"]) != state["new"]:
                    raise ProofError("it is about other checkpoints")
                _growth(p, state["old"], state["new"])
            except Exception as exc:  # noqa: BLE001 - a verdict, never a trace
                problems.append(f"growth proof {i}: {exc}")
        return "; ".join(problems) or None

    return _verdict([notes, order, grew])


_VERIFIERS: dict[str, Callable[..., Verdict]] = {
    "balance": verify_balance, "absence": verify_absence, "event": verify_event,
    "author_consistency": verify_checkpoint_consistency}


def verify_proof(proof: Any, *, net: Any, witnesses: Any, threshold: Any) -> Verdict:
    """Verify any proof document (balance, absence, event, author_consistency, in version 1
    or 2) by its `type`."""
    kind = proof.get("type") if isinstance(proof, Mapping) else None
    verifier = _VERIFIERS.get(kind) if isinstance(kind, str) else None
    if verifier is None:
        return Verdict(False, [f"unknown proof type {kind!r:.40}; known: {', '.join(sorted(_VERIFIERS))}"])
    return verifier(proof, net=net, witnesses=witnesses, threshold=threshold)
