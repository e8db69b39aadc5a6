"""Generate the frozen balance-proof vectors in tests/ledger/vectors/balance_proofs.json.

    python tests/ledger/vectors/make_balance_vectors.py

DO NOT run this to make a failing tests/ledger/test_proof_vectors.py pass. The vectors pin the
checkpoint note, the cosignature message, the state leaf encoding and the balance proof
document that light clients verify; changing them is a format change and must be reviewed
as one (the diff of balance_proofs.json is its record). Everything is deterministic: keys
from fixed seeds, a fixed time, ed25519 signatures (deterministic by construction).

The world: a network whose genesis hash is SHA-256("ledger_net balance vector genesis"),
a signer and three witnesses (W1, W2 trusted; W3 not), ten accounts with balances; the
proof is of account 3 against checkpoint A, with a second checkpoint B (more events) to
present the same leaf against, and absence proofs of accounts that have no entry.

Format version 2 (`"format": 2` here; `ledger.proof_codec`): every proof is stored as it
travels, base64url; each tampered case is tampered in its version 1 (hex) form and then
encoded, so it stays decodable and fails for the reason it names. Cases that tamper with
the encoding itself (non-canonical base64url, an unknown version) are made on the wire
form, and one case keeps the version 1 form of the good proof, which verifiers still take.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from ledger_net.ledger import checkpoint as cp  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.encoding import decode  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.proof_codec import compact  # noqa: E402 -- after sys.path gets this checkout

OUT = Path(__file__).with_name("balance_proofs.json")
NET = hashlib.sha256(b"ledger_net balance vector genesis").hexdigest()
SIGNER, W1, W2, W3 = (Identity.from_seed(bytes([0xC0 + i]) * 32) for i in range(4))
ACCOUNTS = [Identity.from_seed(bytes([0xA0 + i]) * 32).node_id for i in range(10)]
FORMAT = 2


def checkpoint(events: int, balance_bump: int) -> tuple[dict[str, Any], cp.StateTree]:
    """A cosigned checkpoint (signer + W1 + W2 + W3) over the vector world."""
    accounts = {a: {"balance": 1000 * (i + 1) + balance_bump, "escrow": 10 * i, "incoming": 0, "vouchers": 0}
                for i, a in enumerate(ACCOUNTS)}
    reputation = {a: {"score_ppm": 500_000, "positive": i, "negative": 0, "forked": False}
                  for i, a in enumerate(ACCOUNTS[:4])}
    supply = {"minted": sum(v["balance"] + v["escrow"] for v in accounts.values())}
    supply["balances"] = sum(v["balance"] for v in accounts.values())
    supply["escrow"] = sum(v["escrow"] for v in accounts.values())
    state = cp.StateTree.build(cp.state_entries(accounts, reputation, supply))
    frontier = [[a, events // len(ACCOUNTS) + 1, hashlib.sha256(f"root {a} {events}".encode()).hexdigest()]
                for a in sorted(ACCOUNTS)]
    body = cp.make_body(net=NET, signer=SIGNER.node_id, sign=SIGNER.sign, frontier=frontier, state=state,
                        ts=1_800_000_000_000 + events)
    note = cp.note_of(NET, SIGNER.node_id, body)
    message = cp.cosign_message(cp.note_digest(note))
    cosigs = [{"witness": w.node_id, "sig": w.sign(message).hex()} for w in (W1, W2, W3)]
    return {"note": note, "sig": body["sig"], "cosignatures": cosigs}, state


def balance_proof(cpoint: dict[str, Any], state: cp.StateTree, account: str) -> dict[str, Any]:
    index = state.index(cp.ACCOUNT + account)
    assert index is not None
    key, value = decode(state.tree.leaves[index])
    return {"type": "balance", "account": account, "checkpoint": cpoint,
            "leaf": {"index": index, "key": key, "value": value},
            "proof": [h.hex() for h in state.tree.proof(index)]}


def absence_proof(cpoint: dict[str, Any], state: cp.StateTree, account: str) -> dict[str, Any]:
    left, right = state.neighbours(cp.ACCOUNT + account)

    def leaf(index: int | None) -> dict[str, Any] | None:
        if index is None:
            return None
        key, value = decode(state.tree.leaves[index])
        return {"index": index, "key": key, "value": value, "proof": [h.hex() for h in state.tree.proof(index)]}
    return {"type": "absence", "account": account, "checkpoint": cpoint, "left": leaf(left), "right": leaf(right)}


def flip(hex_hash: str) -> str:
    return f"{int(hex_hash[0], 16) ^ 1:x}" + hex_hash[1:]


def build() -> dict[str, Any]:
    a, state_a = checkpoint(40, 0)
    b, _ = checkpoint(50, 7)
    account = ACCOUNTS[3]
    good = balance_proof(a, state_a, account)
    trust = {"net": NET, "witnesses": [W1.node_id, W2.node_id], "threshold": 2}

    def case(name: str, proof: dict[str, Any], expect: str | None, wire: bool = True, **over: Any) -> dict[str, Any]:
        return {"name": name, "proof": compact(proof) if wire else proof, **trust, **over, "ok": expect is None,
                **({"expect": expect} if expect else {})}

    def tampered(change: Any) -> dict[str, Any]:
        proof = copy.deepcopy(good)
        change(proof)
        return proof

    def swap_index(p: dict[str, Any]) -> None:
        p["leaf"]["index"] += 1

    def other_checkpoint(p: dict[str, Any]) -> None:
        p["checkpoint"] = copy.deepcopy(b)

    def non_witness(p: dict[str, Any]) -> None:
        p["checkpoint"]["cosignatures"] = [c for c in p["checkpoint"]["cosignatures"] if c["witness"] != W2.node_id]

    def one_short(p: dict[str, Any]) -> None:
        p["checkpoint"]["cosignatures"] = p["checkpoint"]["cosignatures"][:1]

    def forged_cosig(p: dict[str, Any]) -> None:
        p["checkpoint"]["cosignatures"][2] = {"witness": W2.node_id, "sig": p["checkpoint"]["cosignatures"][2]["sig"]}

    def richer(p: dict[str, Any]) -> None:
        p["leaf"]["value"]["balance"] += 1

    def other_root(p: dict[str, Any]) -> None:
        p["checkpoint"]["note"]["state_root"] = flip(p["checkpoint"]["note"]["state_root"])

    cases = [
        case("good", good, None),
        case("good with W3 also trusted, threshold 3", good, None, witnesses=[W1.node_id, W2.node_id, W3.node_id],
             threshold=3),
        case("flipped sibling hash", tampered(lambda p: p["proof"].__setitem__(0, flip(p["proof"][0]))),
             "does not lead to the root"),
        case("flipped last sibling hash", tampered(lambda p: p["proof"].__setitem__(-1, flip(p["proof"][-1]))),
             "does not lead to the root"),
        case("wrong leaf index", tampered(swap_index), "does not lead to the root"),
        case("leaf value changed", tampered(richer), "does not lead to the root"),
        case("proof against another checkpoint", tampered(other_checkpoint), "does not lead to the root"),
        case("cosignature by a non-witness", tampered(non_witness), "not trusted witnesses"),
        case("threshold not met", tampered(one_short), "threshold not met: 1 of the 2"),
        case("a trusted witness's name on another's cosignature", tampered(forged_cosig), "does not verify"),
        case("state root changed under the signature", tampered(other_root),
             "checkpoint signature does not verify"),
        case("another network", good, "another network", net=hashlib.sha256(b"other").hexdigest()),
        case("wrong account asked", good, "the proof is for account", account=ACCOUNTS[4]),
        case("good, in version 1 (hex)", good, None, wire=False),
        case("non-canonical base64url (unused low bits set)", _wire(good, noncanonical), "not the canonical base64url",
             wire=False),
        case("unknown format version", _wire(good, lambda p: p.__setitem__("v", 3)), "proof version 3", wire=False),
        *absence_cases(a, state_a, trust),
    ]
    return {"comment": "balance and absence proofs (docs/proofs.md); made by tests/vectors/make_balance_vectors.py",
            "format": FORMAT, "net": NET, "signer": SIGNER.node_id, "witnesses": {"W1": W1.node_id, "W2": W2.node_id,
                                                                 "W3": W3.node_id},
            "cases": cases}


def _wire(proof: dict[str, Any], change: Any) -> dict[str, Any]:
    wire = compact(proof)
    change(wire)
    return wire


def noncanonical(p: dict[str, Any]) -> None:
    """The path's last base64url character with an unused low bit set: the same bytes decode."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = p["proof"][-1]
    p["proof"] = p["proof"][:-1] + alphabet[alphabet.index(last) ^ 1]


def absence_cases(a: dict[str, Any], state: cp.StateTree, trust: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts without an entry: one between two accounts, one below every key; tampered."""
    below = "00" * 32
    between = next(f"{int(x, 16) + 1:064x}" for x in sorted(ACCOUNTS) if f"{int(x, 16) + 1:064x}" not in ACCOUNTS)
    inner, first = absence_proof(a, state, between), absence_proof(a, state, below)

    def case(name: str, proof: dict[str, Any], expect: str | None, **over: Any) -> dict[str, Any]:
        return {"name": name, "proof": compact(proof), **trust, **over, "ok": expect is None,
                **({"expect": expect} if expect else {})}

    def tampered(proof: dict[str, Any], change: Any) -> dict[str, Any]:
        proof = copy.deepcopy(proof)
        change(proof)
        return proof

    present = copy.deepcopy(inner)
    present["account"] = present["left"]["key"][2:]
    skipped = absence_proof(a, state, between)
    skipped["right"] = absence_proof(a, state, f"{int(skipped['right']['key'][2:], 16) + 1:064x}")["right"]
    return [
        case("absent: between two accounts", inner, None, account=between),
        case("absent: below every key", first, None),
        case("absent: the account is the left neighbour itself", present,
             "the left neighbour's key does not sort below the account's"),
        case("absent: neighbours not adjacent", skipped, "are not adjacent"),
        case("absent: no left neighbour, not at the start", tampered(inner, lambda p: p.__setitem__("left", None)),
             "no left neighbour, but the right one is not the first leaf"),
        case("absent: neighbour's value changed",
             tampered(inner, lambda p: p["left"]["value"].__setitem__("balance", 0)),
             "left neighbour not in the checkpoint's state root"),
    ]


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
