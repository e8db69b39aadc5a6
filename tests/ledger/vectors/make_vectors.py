"""Generate the frozen test vectors in tests/ledger/vectors/events.json.

    python tests/ledger/vectors/make_vectors.py

DO NOT run this to make a failing tests/ledger/test_vectors.py pass. The vectors pin the
canonical encoding, the hash and the signature of ledger events: every peer and
every stored ledger depends on them staying byte-for-byte identical. Regenerating
the file is a deliberate *format change* (a new `v` in the envelope, a migration
story for existing ledgers) and must be reviewed as such; the diff of events.json
is the record of that change.

Everything is deterministic: fixed ed25519 seeds (Identity.from_seed), fixed
timestamps, ed25519 signatures are deterministic, so running this twice gives the
same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from ledger_net.ledger import encoding  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.events import Event  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout

OUT = Path(__file__).with_name("events.json")

ALICE_SEED = bytes(32)
BOB_SEED = bytes([1]) * 32
TS = 1_700_000_000_000


def _good(name: str, seed: bytes, **spec) -> tuple[dict, Event]:
    event = Event.create(Identity.from_seed(seed), **spec)
    entry = {
        "name": name,
        "seed_hex": seed.hex(),
        "input": {"net": spec["net"], "seq": spec["seq"], "prev": spec["prev"], "type": spec["type"],
                  "body": spec["body"], "deps": list(spec.get("deps", ())), "ts": spec["ts"]},
        "author": event.author,
        "raw_hex": event.raw.hex(),
        "raw_text": event.raw.decode("utf-8"),
        "hash": event.hash,
        "sig_hex": event.sig.hex(),
    }
    return entry, event


def _bad(name: str, raw: bytes, sig: bytes, error: str, why: str) -> dict:
    return {"name": name, "raw_hex": raw.hex(), "sig_hex": sig.hex(), "error": error, "why": why}


def build() -> dict:
    alice, bob = Identity.from_seed(ALICE_SEED), Identity.from_seed(BOB_SEED)
    g_entry, genesis = _good("genesis", ALICE_SEED, net="", seq=1, prev=None, type="network.genesis",
                             body={"name": "vectors", "issuers": [alice.node_id], "decimals": 6}, ts=TS)
    m_entry, mint = _good("mint", ALICE_SEED, net=genesis.hash, seq=2, prev=genesis.hash, type="credit.minted",
                          body={"to": alice.node_id, "amount": 1000, "reason": "initial supply"}, ts=TS + 1)
    t_entry, transfer = _good("transfer", ALICE_SEED, net=genesis.hash, seq=3, prev=mint.hash,
                              type="credit.transfer", body={"to": bob.node_id, "amount": 30, "memo": "héllo"},
                              ts=TS + 2)
    r_entry, _ = _good("receive", BOB_SEED, net=genesis.hash, seq=1, prev=None, type="credit.received",
                       body={"source": transfer.hash}, deps=[transfer.hash], ts=TS + 3)

    raw = transfer.raw
    flipped = bytearray(sig := transfer.sig)
    flipped[0] ^= 0x01
    other_genesis = Event.create(alice, net="", seq=1, prev=None, type="network.genesis",
                                 body={"name": "another network", "issuers": [alice.node_id], "decimals": 6}, ts=TS)
    foreign = Event.create(alice, net=other_genesis.hash, seq=2, prev=other_genesis.hash, type="credit.minted",
                           body={"to": alice.node_id, "amount": 1000, "reason": "initial supply"}, ts=TS + 1)
    env = encoding.decode(raw)
    env["author"] = alice.node_id
    forged_raw = encoding.canonical_bytes(env)
    assert b'"amount":30' in raw and b'"seq":3' in raw
    bad = [
        _bad("raw_flipped_byte", raw.replace(b'"amount":30', b'"amount":70'), sig, "SignatureError",
             "one byte of the signed bytes changed: still canonical, so the hash changes and the signature fails"),
        _bad("sig_flipped_byte", raw, bytes(flipped), "SignatureError", "first signature byte xor 0x01"),
        _bad("sig_truncated", raw, sig[:63], "SignatureError", "a signature is exactly 64 bytes"),
        _bad("non_canonical_spacing", raw.replace(b'"seq":3', b'"seq": 3'), sig, "EncodingError",
             "a space after a colon: not the canonical bytes"),
        _bad("non_canonical_key_order", raw.replace(b'{"amount":30,"memo":"h\xc3\xa9llo",',
                                                    b'{"memo":"h\xc3\xa9llo","amount":30,'), sig, "EncodingError",
             "body keys out of order"),
        _bad("float_inside", raw.replace(b'"amount":30', b'"amount":30.0'), sig, "EncodingError",
             "a float inside signed content"),
        _bad("wrong_net", foreign.raw, foreign.sig, "ChainError",
             "validly signed, but its net is another genesis: refused by this network's ledger"),
        _bad("signed_by_someone_else", forged_raw, bob.sign(encoding.digest(forged_raw)), "SignatureError",
             "author says alice, bob signed"),
    ]
    for item in bad:  # every tampering really changed something
        assert (item["raw_hex"], item["sig_hex"]) != (raw.hex(), sig.hex()), item["name"]
    return {
        "format": "ledger_net event vectors v1",
        "note": "Frozen. Regenerating (tests/vectors/make_vectors.py) is a deliberate format change.",
        "good": [g_entry, m_entry, t_entry, r_entry],
        "bad": bad,
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
