"""Proof documents on the wire: version 2 (compact, base64url) and version 1 (hex).

A node builds proofs in version 1 form (`core/checkpoints.py`): every hash, key and signature
as lowercase hex, each path a list of hashes, each cosignature `{witness, sig}`, the balance
leaf with its key. That form is what the verifiers in `checkpoint.py` and `light.py` read.

Version 2 is what travels (the CLI's `prove`, the HTTP proof routes): the same document with
`"v": 2` at its top, and

* every 32-byte hash or key and every 64-byte signature as unpadded base64url (43 and 86
  characters instead of 64 and 128);
* every path as one base64url string of its hashes end to end (32 bytes each);
* each cosignature as a `[witness, sig]` pair;
* no field a verifier recomputes: a balance leaf's key is `"a/" + account`.

The note keeps its fields and meaning; it is signed in its version 1 (hex) form, so
`expand` rebuilds exactly those bytes. Decoding is strict: a wrong alphabet, length or
padding, or base64 that is not the one canonical encoding of its bytes (unused low bits
set) is a `ProofError`, so no two documents carry one proof and any changed character fails.
A document without `v` is version 1 and passes through unchanged.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ProofError

PROOF_VERSION = 2
ACCOUNT_PREFIX = "a/"  # checkpoint.ACCOUNT (not imported: checkpoint imports nothing from here)
_B64 = re.compile(r"[A-Za-z0-9_-]*").fullmatch
_NOTE_HASHES = ("net", "signer", "frontier_root", "state_root")


def b64(raw: bytes) -> str:
    """Unpadded base64url of `raw`."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: Any, size: int | None, what: str) -> bytes:
    """The bytes of canonical unpadded base64url `text` (exactly `size` of them when given);
    ProofError naming `what` otherwise."""
    if not isinstance(text, str) or _B64(text) is None or len(text) % 4 == 1:
        raise ProofError(f"{what} is not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if size is not None and len(raw) != size:
        raise ProofError(f"{what} is {len(raw)} bytes, not {size}")
    if b64(raw) != text:
        raise ProofError(f"{what} is not the canonical base64url of its bytes")
    return raw


def _hex_to_b64(value: str) -> str:
    return b64(bytes.fromhex(value))


def _b64_to_hex(text: Any, size: int, what: str) -> str:
    return unb64(text, size, what).hex()


def _path_out(path: list[str]) -> str:
    return b64(b"".join(bytes.fromhex(h) for h in path))


def _path_in(text: Any, what: str) -> list[str]:
    raw = unb64(text, None, what)
    if len(raw) % 32:
        raise ProofError(f"{what} is {len(raw)} bytes, not a whole number of 32-byte hashes")
    return [raw[i:i + 32].hex() for i in range(0, len(raw), 32)]


def _object(value: Any, what: str, names: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or set(value) != names:
        raise ProofError(f"{what} is not an object of {sorted(names)}")
    return value


# ------------------------------------------------------------------ parts
def _checkpoint_out(cp: Mapping[str, Any]) -> dict[str, Any]:
    note = dict(cp["note"])
    for f in _NOTE_HASHES:
        note[f] = _hex_to_b64(note[f])
    return {"note": note, "sig": _hex_to_b64(cp["sig"]),
            "cosignatures": [[_hex_to_b64(c["witness"]), _hex_to_b64(c["sig"])] for c in cp["cosignatures"]]}


def _checkpoint_in(cp: Any) -> dict[str, Any]:
    cp = _object(cp, "checkpoint", {"note", "sig", "cosignatures"})
    if not isinstance(cp["note"], Mapping):
        raise ProofError("checkpoint note is not an object")
    note = dict(cp["note"])
    for f in _NOTE_HASHES:
        if f in note:
            note[f] = _b64_to_hex(note[f], 32, f"checkpoint {f}")
    cosigs = cp["cosignatures"]
    if not isinstance(cosigs, list):
        raise ProofError("cosignatures are not a list")
    pairs = []
    for i, pair in enumerate(cosigs):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProofError(f"cosignature {i} is not a [witness, sig] pair")
        pairs.append({"witness": _b64_to_hex(pair[0], 32, f"cosignature {i} witness"),
                      "sig": _b64_to_hex(pair[1], 64, f"cosignature {i} sig")})
    return {"note": note, "sig": _b64_to_hex(cp["sig"], 64, "checkpoint sig"), "cosignatures": pairs}


def _author_out(leaf: Mapping[str, Any]) -> dict[str, Any]:
    return {"index": leaf["index"], "size": leaf["size"], "root": _hex_to_b64(leaf["root"]),
            "proof": _path_out(leaf["proof"])}


def _author_in(leaf: Any, what: str) -> dict[str, Any]:
    leaf = _object(leaf, what, {"index", "size", "root", "proof"})
    return {"index": leaf["index"], "size": leaf["size"], "root": _b64_to_hex(leaf["root"], 32, f"{what} root"),
            "proof": _path_in(leaf["proof"], f"{what} proof")}


def _neighbour_out(leaf: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if leaf is None else {**leaf, "proof": _path_out(leaf["proof"])}


def _neighbour_in(leaf: Any, what: str) -> dict[str, Any] | None:
    if leaf is None:
        return None
    leaf = _object(leaf, what, {"index", "key", "value", "proof"})
    return {**leaf, "proof": _path_in(leaf["proof"], f"{what} proof")}


# ------------------------------------------------------------------ documents
def _balance_out(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"account": _hex_to_b64(p["account"]), "checkpoint": _checkpoint_out(p["checkpoint"]),
            "leaf": {"index": p["leaf"]["index"], "value": p["leaf"]["value"]}, "proof": _path_out(p["proof"])}


def _balance_in(p: Mapping[str, Any]) -> dict[str, Any]:
    account = _b64_to_hex(p["account"], 32, "account")
    leaf = _object(p["leaf"], "leaf", {"index", "value"})
    return {"account": account, "checkpoint": _checkpoint_in(p["checkpoint"]),
            "leaf": {"index": leaf["index"], "key": ACCOUNT_PREFIX + account, "value": leaf["value"]},
            "proof": _path_in(p["proof"], "proof")}


def _absence_out(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"account": _hex_to_b64(p["account"]), "checkpoint": _checkpoint_out(p["checkpoint"]),
            "left": _neighbour_out(p["left"]), "right": _neighbour_out(p["right"])}


def _absence_in(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"account": _b64_to_hex(p["account"], 32, "account"), "checkpoint": _checkpoint_in(p["checkpoint"]),
            "left": _neighbour_in(p["left"], "left neighbour"), "right": _neighbour_in(p["right"], "right neighbour")}


def _event_out(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"checkpoint": _checkpoint_out(p["checkpoint"]), "author": _author_out(p["author"]),
            "event": {"raw": p["event"]["raw"], "sig": _hex_to_b64(p["event"]["sig"])}, "proof": _path_out(p["proof"])}


def _event_in(p: Mapping[str, Any]) -> dict[str, Any]:
    event = _object(p["event"], "event", {"raw", "sig"})
    return {"checkpoint": _checkpoint_in(p["checkpoint"]), "author": _author_in(p["author"], "author leaf"),
            "event": {"raw": event["raw"], "sig": _b64_to_hex(event["sig"], 64, "event sig")},
            "proof": _path_in(p["proof"], "proof")}


def _growth_out(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"author": _hex_to_b64(p["author"]), "old": _checkpoint_out(p["old"]), "new": _checkpoint_out(p["new"]),
            "old_leaf": _author_out(p["old_leaf"]), "new_leaf": _author_out(p["new_leaf"]),
            "proof": _path_out(p["proof"])}


def _growth_in(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"author": _b64_to_hex(p["author"], 32, "author"), "old": _checkpoint_in(p["old"]),
            "new": _checkpoint_in(p["new"]), "old_leaf": _author_in(p["old_leaf"], "old author leaf"),
            "new_leaf": _author_in(p["new_leaf"], "new author leaf"), "proof": _path_in(p["proof"], "proof")}


_Codec = tuple[set[str], Callable[[Mapping[str, Any]], dict[str, Any]], Callable[[Mapping[str, Any]], dict[str, Any]]]
_CODECS: dict[str, _Codec] = {
    "balance": ({"account", "checkpoint", "leaf", "proof"}, _balance_out, _balance_in),
    "absence": ({"account", "checkpoint", "left", "right"}, _absence_out, _absence_in),
    "event": ({"checkpoint", "author", "event", "proof"}, _event_out, _event_in),
    "author_consistency": ({"author", "old", "new", "old_leaf", "new_leaf", "proof"}, _growth_out, _growth_in),
}


def compact(proof: Mapping[str, Any]) -> dict[str, Any]:
    """The version 2 form of a version 1 proof document built by a node."""
    kind = proof["type"]
    return {"type": kind, "v": PROOF_VERSION, **_CODECS[kind][1](proof)}


def expand(proof: Any) -> Any:
    """The version 1 form of a proof document: version 1 (no `v`) and anything that is not a
    proof document are returned as they are (the verifiers name what is wrong with them);
    version 2 is decoded, and a ProofError names what in it cannot be."""
    if not isinstance(proof, Mapping) or "v" not in proof:
        return proof
    if proof["v"] != PROOF_VERSION or type(proof["v"]) is not int:
        raise ProofError(f"proof version {proof['v']!r:.20} is not {PROOF_VERSION} (or absent, for 1)")
    kind = proof.get("type")
    codec = _CODECS.get(kind) if isinstance(kind, str) else None
    if codec is None:
        raise ProofError(f"unknown proof type {kind!r:.40}; known: {', '.join(sorted(_CODECS))}")
    names, _, decode = codec
    if set(proof) != names | {"type", "v"}:
        raise ProofError(f"a version {PROOF_VERSION} {kind} proof has the fields {sorted(names | {'type', 'v'})}")
    return {"type": kind, **decode(proof)}
