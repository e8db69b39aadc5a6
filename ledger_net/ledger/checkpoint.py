"""Checkpoints: a signed frontier of author chains and a state root over the projections.

Pure functions over bytes and plain values (no store, no projections): the node side
(`core/checkpoints.py`), the rules and the light client all build and check the same
bytes with them. What they define:

* **Frontier.** The set of (author, size, author root) a node holds, one leaf per author
  sorted by key: leaf data `canonical([author, size, root hex])`. Sizes travel with roots
  because an RFC 9162 proof does not bind the tree size on its own. Up to `FRONTIER_INLINE`
  authors it is inline in the event; a larger one is *detached*: the event names a blob
  (the entries' canonical JSON, `frontier_blob`) that witnesses fetch and check against the
  note's frontier root, count and sum before cosigning.
* **State leaves.** Sorted key/value leaves `canonical([key, value])`: `a/<account>` →
  balance, escrow, incoming and vouchers; `r/<node>` → reputation; `s/supply` → the totals.
  Every value is a small object of integers (and one bool): nothing signed holds a float.
* **Note.** The compact statement a checkpoint signs: network, signer, frontier root and
  size, event count, state root and size, time. Its digest names the checkpoint to light
  clients and witnesses; a witness's cosignature is an ed25519 signature of
  `SHA-256("ledger_net/cosign/v1\\0" ‖ note digest)`.
* **Conflicts.** Two checkpoints of one signer where the later one does not extend the
  earlier (an author dropped or shrunk, two roots at one size, or a root the later one's
  tree denies) — checked from the two signed bodies and a consistency path alone, plus, for a
  detached frontier, the author's leaf (or its two neighbours) proven against its root.

Over 400 lines: this is the one definition of what a checkpoint's bytes mean, shared by the
rules, the witnesses and the light client; splitting it would split that definition.

Imports only hashing, nacl, canonical encoding and the pure Merkle code, so the light
client can use it (tests/ledger/test_light.py checks).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import orjson

from ..errors import ProofError
from .encoding import INT_MAX, INT_MIN, canonical_bytes
from .merkle import EMPTY_ROOT, fold, inclusion_proof, leaf_hash, perfect_nodes
from .merkle_verify import as_hash, check_inclusion, implied_old_root

_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch

CHECKPOINT_SIGNED = "checkpoint.signed"
CHECKPOINT_COSIGNED = "checkpoint.cosigned"
CHECKPOINT_CONFLICT = "checkpoint.conflict"
NOTE_VERSION = 1
NOTE_CONTEXT = b"ledger_net/checkpoint/v1\x00"
COSIGN_CONTEXT = b"ledger_net/cosign/v1\x00"
ACCOUNT = "a/"
REPUTATION = "r/"
SUPPLY_KEY = "s/supply"
FRONTIER_INLINE = 256  # authors named inline in a checkpoint event; more are a detached blob (64 KiB limit)
NOTE_FIELDS = ("frontier_root", "authors", "events", "state_root", "state_size", "ts")
ACCOUNT_FIELDS = ("balance", "escrow", "incoming", "vouchers")
REPUTATION_FIELDS = ("score_ppm", "positive", "negative", "forked")
SUPPLY_FIELDS = ("minted", "balances", "escrow", "in_transit", "vouchers", "burnt")


# ------------------------------------------------------------------ leaves and trees
def state_leaf(key: str, value: Mapping[str, Any]) -> bytes:
    """Leaf data of one state entry: canonical `[key, value]`."""
    return canonical_bytes([key, dict(value)])


def frontier_leaf(author: str, size: int, root: str) -> bytes:
    """Leaf data of one author in a frontier: canonical `[author, size, root hex]`."""
    return canonical_bytes([author, size, root])


class Tree:
    """An RFC 9162 tree over leaf data held in memory, with every perfect node kept, so
    that its root and any inclusion proof cost no rehashing after the build (O(n))."""

    def __init__(self, leaves: Sequence[bytes], levels: list[list[bytes]] | None = None) -> None:
        self.leaves = list(leaves)
        if levels is None:
            sha = hashlib.sha256  # leaf_hash and node_hash inlined: a checkpoint hashes ~2n times
            level = [sha(b"\x00" + d).digest() for d in self.leaves]
            levels = [level]
            while len(level) > 1:
                level = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
                levels.append(level)
        self.levels = levels
        self.size = len(self.leaves)
        self.root = self._range_root(0, self.size) if self.size else EMPTY_ROOT

    @classmethod
    def from_levels(cls, leaves: list[bytes], levels: list[list[bytes]]) -> Tree:
        """A tree whose leaf hashes and perfect nodes were computed already (`state_tree`):
        `levels[0]` the leaf hashes, each next level the node hashes of pairs of the one below."""
        return cls(leaves, levels)

    def _fetch(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self.levels[level][idx] for level, idx in ids]

    def _range_root(self, lo: int, hi: int) -> bytes:
        return fold(self._fetch(perfect_nodes(lo, hi)))

    def proof(self, index: int) -> list[bytes]:
        """Inclusion proof of leaf `index`."""
        return inclusion_proof(index, self.size, self._fetch)


@dataclass(frozen=True)
class StateTree:
    """The state leaves of a checkpoint: keys in order, their data, and the tree."""

    keys: list[str]
    tree: Tree

    @classmethod
    def build(cls, entries: Mapping[str, Mapping[str, Any]]) -> StateTree:
        """The tree over `state_entries` output. Its values are flat objects of int64s and
        bools, whose canonical bytes are orjson's with sorted keys: the encoder is called
        directly, without `canonical_bytes`' walk (which would double the cost)."""
        keys = sorted(entries)
        dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
        return cls(keys, Tree([dumps([k, entries[k]], option=sort) for k in keys]))

    def _place(self, key: str) -> int:
        """The first index whose key is not below `key` (binary search over the sorted keys)."""
        lo, hi = 0, len(self.keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.keys[mid] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def index(self, key: str) -> int | None:
        """Where `key` is (None if absent)."""
        at = self._place(key)
        return at if at < len(self.keys) and self.keys[at] == key else None

    def neighbours(self, key: str) -> tuple[int | None, int | None]:
        """Indexes of the leaves just below and just above an absent `key` (None past an end)."""
        at = self._place(key)
        if at < len(self.keys) and self.keys[at] == key:
            raise ValueError(f"{key[:20]}… is in the state")
        return (at - 1 if at > 0 else None), (at if at < len(self.keys) else None)


def state_entries(accounts: Mapping[str, Mapping[str, int]], reputation: Mapping[str, Mapping[str, Any]],
                  supply: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Key → value of every state leaf, from the projections' rows (extra columns dropped);
    ValueError for an integer outside signed 64 bits (it has no canonical form)."""
    out: dict[str, dict[str, Any]] = {}
    low, high = INT_MIN, INT_MAX
    for acct, row in accounts.items():
        value = {f: int(row.get(f, 0)) for f in ACCOUNT_FIELDS}
        if not (low <= min(value.values()) and max(value.values()) <= high):
            raise ValueError(f"account {acct[:16]}… has an amount outside signed 64 bits")
        out[ACCOUNT + acct] = value
    for node, row in reputation.items():
        rep: dict[str, Any] = {f: int(row.get(f, 0)) for f in REPUTATION_FIELDS if f != "forked"}
        if not (low <= min(rep.values()) and max(rep.values()) <= high):
            raise ValueError(f"reputation of {node[:16]}… is outside signed 64 bits")
        rep["forked"] = bool(row.get("forked"))
        out[REPUTATION + node] = rep
    out[SUPPLY_KEY] = {f: int(supply.get(f, 0)) for f in SUPPLY_FIELDS}
    if not all(low <= v <= high for v in out[SUPPLY_KEY].values()):
        raise ValueError("supply is outside signed 64 bits")
    return out


def frontier_tree(frontier: Sequence[Sequence[Any]]) -> Tree:
    """The tree over a frontier given as sorted `[author, size, root hex]` entries."""
    return Tree([frontier_leaf(a, s, r) for a, s, r in frontier])


# ------------------------------------------------------------------ notes and signatures
def note_of(net: str, signer: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The note a `checkpoint.signed` body carries: what signer and witnesses sign."""
    return {"v": NOTE_VERSION, "net": net, "signer": signer, **{f: body[f] for f in NOTE_FIELDS}}


def note_digest(note: Mapping[str, Any]) -> bytes:
    """The checkpoint's identity for light clients and witnesses: a domain-separated hash."""
    return hashlib.sha256(NOTE_CONTEXT + canonical_bytes(dict(note))).digest()


def cosign_message(digest: bytes) -> bytes:
    """What a witness signs to cosign the checkpoint whose note digest is `digest`."""
    return hashlib.sha256(COSIGN_CONTEXT + digest).digest()


def signature_ok(key_hex: str, message: bytes, sig_hex: Any) -> bool:
    """True iff `sig_hex` is `key_hex`'s ed25519 signature of `message`; False on any junk."""
    try:
        nacl.signing.VerifyKey(bytes.fromhex(key_hex)).verify(message, bytes.fromhex(sig_hex))
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


def make_body(*, net: str, signer: str, sign: Callable[[bytes], bytes], frontier: Sequence[Sequence[Any]],
              state: StateTree, ts: int) -> dict[str, Any]:
    """The body of a `checkpoint.signed` event: the frontier (inline up to `FRONTIER_INLINE`
    authors, else detached: `frontier_blob` names it, see `detached_frontier`), the note's
    fields and the signer's signature of the note digest (`sign` is its `Identity.sign`)."""
    entries = sorted_frontier(frontier)
    tree = frontier_tree(entries)
    body: dict[str, Any] = {"frontier": entries, "frontier_root": tree.root.hex(), "authors": len(entries),
                            "events": sum(s for _, s, _ in entries), "state_root": state.tree.root.hex(),
                            "state_size": state.tree.size, "ts": int(ts)}
    if len(entries) > FRONTIER_INLINE:
        body["frontier"], body["frontier_blob"] = [], detached_frontier(entries)[0]
    body["sig"] = sign(note_digest(note_of(net, signer, body))).hex()
    return body


def sorted_frontier(frontier: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """`[author, size, root hex]` entries sorted by author."""
    return [[a, int(s), r] for a, s, r in sorted(frontier, key=lambda e: str(e[0]))]


def detached_frontier(entries: Sequence[Sequence[Any]]) -> tuple[str, bytes]:
    """(blob hash, bytes) of a detached frontier: the canonical JSON of its sorted entries,
    kept and served as a content-addressed blob."""
    data = canonical_bytes([list(e) for e in entries])
    return hashlib.sha256(data).hexdigest(), data


def check_frontier(body: Mapping[str, Any], frontier: Any) -> str | None:
    """Why `frontier` (inline, or a detached one's decoded blob) is not the frontier the
    body's note names, or None: sorted `[author, size, root]` entries, one per author, whose
    count, sum of sizes and Merkle root are the note's."""
    if not isinstance(frontier, list) or not all(
            isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and type(e[1]) is int and e[1] >= 1
            and isinstance(e[2], str) and _HEX64(e[2]) is not None for e in frontier):
        return "frontier is not a list of [author, size >= 1, root hex] entries"
    authors = [e[0] for e in frontier]
    if any(a >= b for a, b in zip(authors, authors[1:], strict=False)):
        return "frontier is not sorted by author, one entry each"
    if len(frontier) != body["authors"]:
        return f"frontier names {len(frontier)} authors, the note says {body['authors']}"
    if sum(e[1] for e in frontier) != body["events"]:
        return "frontier sizes do not add up to the note's event count"
    if frontier_tree(frontier).root.hex() != body["frontier_root"]:
        return "frontier does not hash to the note's frontier root"
    return None


def check_body(net: str, signer: str, body: Mapping[str, Any]) -> str | None:
    """Why a `checkpoint.signed` body (already shape-checked) is not a checkpoint, or None:
    an inline frontier passes `check_frontier` (a detached one is checked by each witness
    once it holds the blob), and the note signature is the signer's."""
    if "frontier_blob" in body:
        if body["frontier"]:
            return "a checkpoint with a detached frontier carries no inline entries"
        if body["authors"] <= FRONTIER_INLINE:
            return f"a frontier of {FRONTIER_INLINE} authors or fewer is inline"
    else:
        reason = check_frontier(body, body["frontier"])
        if reason is not None:
            return reason
    if not signature_ok(signer, note_digest(note_of(net, signer, body)), body["sig"]):
        return "note signature does not verify under the signer's key"
    return None


# ------------------------------------------------------------------ conflicts
def _sizes(body: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    return {a: (s, r) for a, s, r in body["frontier"]}


def find_conflict(earlier: Mapping[str, Any], later: Mapping[str, Any],
                  root_at: Callable[[str, int], bytes | None] | None = None,
                  path: Callable[[str, int, int], list[bytes] | None] | None = None
                  ) -> tuple[str, list[str]] | None:
    """(author, consistency path) showing `later` does not extend `earlier`, or None when no
    inconsistency can be shown (a detached frontier filled in by the caller: `frontier` holds
    its entries). `root_at(author, size)` and `path(author, old, new)` read the
    caller's own chains (a full path: the old root first when the old size is a power of two);
    without them only a dropped or shrunk author, or two roots at one size, are found."""
    new = _sizes(later)
    for author, (size_a, root_a) in _sizes(earlier).items():
        size_b, root_b = new.get(author, (0, ""))
        if size_b < size_a or (size_b == size_a and root_b != root_a):
            return author, []
        if size_b > size_a and root_at is not None and path is not None:
            mine = root_at(author, size_b)
            if mine is not None and mine.hex() == root_b:
                full = path(author, size_a, size_b)
                if full is not None and implied_old_root(size_a, size_b, mine, full).hex() != root_a:
                    return author, [h.hex() for h in full]
    return None


def frontier_evidence(entries: Sequence[Sequence[Any]], author: str) -> dict[str, Any]:
    """What a detached frontier says of `author`, provable against its root alone: its leaf
    `{index, entry, proof}`, or, when it does not name the author, `{left, right}`: the
    adjacent leaves around where it would sort (None past an end)."""
    tree = frontier_tree(entries)
    authors = [str(e[0]) for e in entries]
    lo = next((i for i, a in enumerate(authors) if a >= author), len(authors))

    def leaf(i: int) -> dict[str, Any]:
        return {"index": i, "entry": list(entries[i]), "proof": [h.hex() for h in tree.proof(i)]}
    if lo < len(authors) and authors[lo] == author:
        return leaf(lo)
    return {"left": leaf(lo - 1) if lo > 0 else None, "right": leaf(lo) if lo < len(authors) else None}


def _proven_entry(body: Mapping[str, Any], author: str, evidence: Any) -> tuple[int, str]:
    """(size, root hex) a checkpoint names for `author` ((0, "") for none): from its inline
    frontier, or for a detached one from `evidence` (`frontier_evidence`) checked against its
    frontier root and author count. ProofError when the evidence does not hold."""
    if "frontier_blob" not in body:
        return _sizes(body).get(author, (0, ""))
    if not isinstance(evidence, Mapping):
        raise ProofError("a detached frontier needs the author's leaf, or its neighbours, as evidence")
    size = body["authors"]

    def entry_of(leaf: Any) -> list[Any]:
        if not isinstance(leaf, Mapping) or set(leaf) != {"index", "entry", "proof"}:
            raise ProofError("a frontier leaf is {index, entry, proof}")
        e = leaf["entry"]
        if not (isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and type(e[1]) is int
                and isinstance(e[2], str)):
            raise ProofError("a frontier entry is [author, size, root hex]")
        check_inclusion(leaf["index"], size, leaf_hash(frontier_leaf(*e)), leaf["proof"], body["frontier_root"])
        return e
    if "entry" in evidence:
        e = entry_of(evidence)
        if e[0] != author:
            raise ProofError("the frontier leaf is another author's")
        return e[1], e[2]
    if set(evidence) != {"left", "right"} or evidence["left"] is None and evidence["right"] is None:
        raise ProofError("a frontier absence is {left, right}, at least one of them a leaf")
    left = entry_of(evidence["left"]) if evidence["left"] is not None else None
    right = entry_of(evidence["right"]) if evidence["right"] is not None else None
    if (left is not None and not left[0] < author) or (right is not None and not author < right[0]):
        raise ProofError("the neighbours do not enclose the author")
    first = evidence["left"]["index"] + 1 if left is not None else 0
    if (right is not None and evidence["right"]["index"] != first) or (right is None and first != size):
        raise ProofError("the neighbours are not adjacent leaves (or the ends of the frontier)")
    return 0, ""


def check_conflict(earlier: Mapping[str, Any], later: Mapping[str, Any], author: str, proof: Any,
                   leaves: Any = None) -> str | None:
    """None when `later`'s frontier provably does not extend `earlier`'s at `author`,
    else why not. Pure: the two signed bodies, the path and, for a detached frontier, its
    `leaves` evidence (`{"a": …, "b": …}`, each from `frontier_evidence`) are all of it."""
    evidence = leaves if isinstance(leaves, Mapping) else {}
    try:
        size_a, root_a = _proven_entry(earlier, author, evidence.get("a"))
        size_b, root_b = _proven_entry(later, author, evidence.get("b"))
    except ProofError as exc:
        return f"frontier evidence: {exc}"
    if size_a == 0:
        return "the earlier checkpoint does not name the author"
    if size_b < size_a:
        return None  # shrank (or vanished)
    if size_b == size_a:
        return None if root_b != root_a else "both checkpoints agree on the author"
    try:
        implied = implied_old_root(size_a, size_b, as_hash(root_b, "later root"), proof)
    except ProofError as exc:
        return f"consistency path: {exc}"
    return None if implied.hex() != root_a else "the later root extends the earlier one"


# ------------------------------------------------------------------ light-client checks
def check_note(note: Any, net: str) -> dict[str, Any]:
    """The note as a dict if its shape is a note of network `net`; ProofError otherwise."""
    if not isinstance(note, Mapping):
        raise ProofError("checkpoint note is not an object")
    want = {"v", "net", "signer", *NOTE_FIELDS}
    if set(note) != want:
        raise ProofError(f"checkpoint note has fields {sorted(note)}, not {sorted(want)}")
    if note["v"] != NOTE_VERSION:
        raise ProofError(f"checkpoint note version {note['v']!r} is not {NOTE_VERSION}")
    if note["net"] != net:
        raise ProofError("checkpoint belongs to another network (its net is not the genesis given)")
    for f in ("signer", "frontier_root", "state_root"):
        as_hash(note[f], f"checkpoint {f}")
    for f in ("authors", "events", "state_size", "ts"):
        if type(note[f]) is not int or note[f] < 0:
            raise ProofError(f"checkpoint {f} is not a non-negative integer")
    return dict(note)


def check_state_leaf(note: Mapping[str, Any], key: str, leaf: Any, proof: Any) -> dict[str, Any]:
    """The value of state entry `key` proven by `leaf` ({index, key, value}) and its
    inclusion `proof` against the note's state root; ProofError naming the failure."""
    if not isinstance(leaf, Mapping) or set(leaf) != {"index", "key", "value"}:
        raise ProofError("leaf is not {index, key, value}")
    if leaf["key"] != key:
        raise ProofError(f"leaf is for {str(leaf['key'])[:80]!r}, not {key!r}")
    if not isinstance(leaf["value"], Mapping):
        raise ProofError("leaf value is not an object")
    try:
        data = state_leaf(key, leaf["value"])
    except Exception as exc:  # noqa: BLE001 - a float or junk in the value: a reason, not a trace
        raise ProofError(f"leaf value has no canonical form: {exc}") from None
    check_inclusion(leaf["index"], note["state_size"], leaf_hash(data), proof, note["state_root"])
    return dict(leaf["value"])


def check_absence(note: Mapping[str, Any], key: str, left: Any, right: Any) -> None:
    """Return when `left` and `right` ({index, key, value, proof}, or None past an end of the
    tree) are adjacent leaves of the note's state root whose keys enclose `key`: the state
    leaves are sorted by key, one each, so `key` has no leaf. ProofError naming the failure."""
    size = note["state_size"]
    if left is None and right is None:
        raise ProofError("an absence proof needs at least one neighbouring leaf")
    found = []
    for side, leaf in (("left", left), ("right", right)):
        if leaf is None:
            continue
        if not isinstance(leaf, Mapping) or set(leaf) != {"index", "key", "value", "proof"}:
            raise ProofError(f"{side} neighbour is not {{index, key, value, proof}}")
        if not isinstance(leaf["key"], str):
            raise ProofError(f"{side} neighbour's key is not a string")
        try:
            check_state_leaf(note, leaf["key"], {k: leaf[k] for k in ("index", "key", "value")}, leaf["proof"])
        except ProofError as exc:
            raise ProofError(f"{side} neighbour not in the checkpoint's state root: {exc}") from None
        found.append(leaf)
    if left is not None and not left["key"] < key:
        raise ProofError("the left neighbour's key does not sort below the account's")
    if right is not None and not key < right["key"]:
        raise ProofError("the right neighbour's key does not sort above the account's")
    if left is not None and right is not None and right["index"] != left["index"] + 1:
        raise ProofError(f"neighbours at leaves {left['index']} and {right['index']} are not adjacent")
    if left is None and right["index"] != 0:
        raise ProofError("no left neighbour, but the right one is not the first leaf")
    if right is None and left["index"] != size - 1:
        raise ProofError("no right neighbour, but the left one is not the last leaf")


def check_frontier_leaf(note: Mapping[str, Any], author: str, leaf: Any) -> tuple[int, str]:
    """(size, root hex) of `author` proven by `leaf` ({index, size, root, proof}) against
    the note's frontier root; ProofError naming the failure."""
    if not isinstance(leaf, Mapping) or set(leaf) != {"index", "size", "root", "proof"}:
        raise ProofError("author leaf is not {index, size, root, proof}")
    size, root = leaf["size"], leaf["root"]
    if type(size) is not int or size < 1:
        raise ProofError("author leaf size is not a positive integer")
    as_hash(root, "author root")
    check_inclusion(leaf["index"], note["authors"], leaf_hash(frontier_leaf(author, size, root)), leaf["proof"],
                    note["frontier_root"])
    return size, root


def hashes(values: Iterable[bytes]) -> list[str]:
    """Hex of each hash (how proofs travel)."""
    return [v.hex() for v in values]

