"""Generate the frozen Merkle proof vectors in tests/ledger/vectors/merkle.json.

    python tests/ledger/vectors/make_merkle_vectors.py

DO NOT run this to make a failing tests/ledger/test_merkle.py pass. The vectors pin RFC 9162
hashing and the proof format that light clients verify; a change to them is a format
change that splits every client from every node, and must be reviewed as one (the
diff of merkle.json is its record). Everything is deterministic.

Leaf data are 32-byte digests, as in an author's chain (the digest of an event's stored
bytes): leaf i's data is SHA-256("ledger_net merkle vector leaf <i>").
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from ledger_net.ledger import merkle  # noqa: E402 -- after sys.path gets this checkout

OUT = Path(__file__).with_name("merkle.json")
N = 13


def main() -> None:
    data = [hashlib.sha256(f"ledger_net merkle vector leaf {i}".encode()).digest() for i in range(N)]
    leaves = [merkle.leaf_hash(d) for d in data]
    nodes = {(level, idx): h for level, idx, h in merkle.extend([], leaves)[1]}

    def fetch(ids: list[tuple[int, int]]) -> list[bytes]:
        return [nodes[i] for i in ids]

    roots = {n: merkle.root_of(leaves[:n]) for n in range(N + 1)}
    hx = bytes.hex

    def flip(h: bytes, bit: int = 0) -> bytes:
        return bytes([h[0] ^ (1 << bit)]) + h[1:]

    def inc(name, index, size, proof, root, leaf=None, valid=False, error=""):
        leaf = leaves[index] if leaf is None else leaf
        return {"name": name, "index": index, "size": size, "leaf": leaf if isinstance(leaf, str) else hx(leaf),
                "proof": [p if isinstance(p, str) else hx(p) for p in proof],
                "root": root if isinstance(root, str) else hx(root), "valid": valid, "error": error}

    inclusion = []
    for index, size in [(0, 1), (0, 8), (5, 8), (6, 7), (12, 13), (4, 13), (8, 9)]:
        inclusion.append(inc(f"good_{index}_of_{size}", index, size, merkle.inclusion_proof(index, size, fetch),
                             roots[size], valid=True))
    p = merkle.inclusion_proof(5, 13, fetch)
    inclusion += [
        inc("flipped_sibling_bit", 5, 13, [p[0], flip(p[1]), *p[2:]], roots[13], error="does not lead to the root"),
        inc("wrong_leaf_index", 4, 13, p, roots[13], leaf=leaves[5], error="does not lead to the root"),
        inc("leaf_of_another_index", 5, 13, p, roots[13], leaf=leaves[4], error="does not lead to the root"),
        inc("against_another_root", 5, 13, p, roots[12], error="does not lead to the root"),
        inc("against_another_size", 5, 12, merkle.inclusion_proof(5, 13, fetch), roots[12],
            error="does not lead to the root"),
        inc("flipped_root_bit", 5, 13, p, flip(roots[13], 7), error="does not lead to the root"),
        inc("truncated", 5, 13, p[:-1], roots[13], error="needs 4"),
        inc("one_hash_too_many", 5, 13, [*p, p[0]], roots[13], error="needs 4"),
        inc("index_out_of_range", 13, 13, p, roots[13], leaf=leaves[5], error="not inside a tree"),
        inc("proof_hash_not_hex", 5, 13, [p[0], "zz" * 32, *p[2:]], roots[13], error="proof hash 1"),
        inc("proof_hash_short", 5, 13, [p[0], hx(p[1])[:62], *p[2:]], roots[13], error="proof hash 1"),
        inc("root_uppercase_hex", 5, 13, p, hx(roots[13]).upper(), error="root"),
    ]

    def con(name, old_size, new_size, proof, old_root=None, new_root=None, valid=False, error=""):
        return {"name": name, "old_size": old_size, "new_size": new_size,
                "old_root": hx(roots[old_size] if old_root is None else old_root),
                "new_root": hx(roots[new_size] if new_root is None else new_root),
                "proof": [p if isinstance(p, str) else hx(p) for p in proof], "valid": valid, "error": error}

    consistency = []
    for old, new in [(0, 5), (1, 1), (1, 8), (4, 8), (3, 7), (6, 13), (8, 13), (12, 13)]:
        consistency.append(con(f"good_{old}_to_{new}", old, new, merkle.consistency_proof(old, new, fetch),
                               valid=True))
    c = merkle.consistency_proof(6, 13, fetch)
    consistency += [
        con("flipped_proof_bit", 6, 13, [c[0], flip(c[1], 3), *c[2:]], error="does not lead to the"),
        con("wrong_old_root", 6, 13, c, old_root=roots[5], error="does not lead to the old root"),
        con("wrong_new_root", 6, 13, c, new_root=roots[12], error="does not lead to the new root"),
        con("against_another_old_size", 5, 13, c, error="need 5"),
        con("empty_proof", 6, 13, [], error="need"),
        con("old_bigger_than_new", 8, 6, c, error="cannot be a prefix"),
        con("same_size_other_root", 5, 5, [], new_root=roots[6], error="differ"),
        con("reversed_proof", 6, 13, list(reversed(c)), error="does not lead to the"),
    ]
    doc = {
        "format": "ledger_net merkle vectors v1",
        "hashing": "RFC 9162: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), "
                   "empty = SHA-256('')",
        "leaf_data": [hx(d) for d in data],
        "leaf_hashes": [hx(h) for h in leaves],
        "roots": {str(n): hx(r) for n, r in roots.items()},
        "inclusion": inclusion,
        "consistency": consistency,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(inclusion)} inclusion, {len(consistency)} consistency vectors")


if __name__ == "__main__":
    main()
