"""The state tree of checkpoints, kept between builds so the next one rehashes only what changed.

A checkpoint's state root is a pure function of its state entries (`checkpoint.state_entries`:
sorted key/value leaves, RFC 9162 hashing), and `StateBuilder` computes exactly that root; it
only remembers, per key, the value tuple, leaf bytes and leaf hash of its last build, and that
build's interior levels. The next build reads every projection row once (a tuple per row, no
dict, no JSON), re-encodes and rehashes only the leaves whose values differ, and then:

* with the same keys (the usual case between checkpoints: balances move, accounts stay), only
  the interior nodes above a changed leaf, each once;
* with keys added or removed (leaf indexes shift), every interior node again, from the cached
  leaf hashes (about n hashes, a fifth of a cold build).

* with the same keys in another order (a projection loaded from its tables), the changed
  leaves found by key, then as in the first case.

`dump` and `restore` carry the last build across a restart (core/checkpoints keeps it in the
store's `state_trees`): the restored tree is compared row by row with the projections at the
next build like any earlier build, so a dump of older rows costs only what changed since; one
that is damaged (its digest), of another leaf format, or whose sampled leaves and nodes do not
hash as stored is refused, and the build is then a full one.

Leaf bytes are formatted from a template per kind instead of through `canonical_bytes`; they
are the same bytes (tests/ledger/test_state_tree.py checks them against `state_leaf`). Each
build returns an immutable `StateTree`; the builder's own lists are copied, never shared.
"""

from __future__ import annotations

import gc
import hashlib
import random
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import chain, compress
from operator import itemgetter, ne
from typing import Any, cast

import orjson

from .checkpoint import (
    ACCOUNT,
    ACCOUNT_FIELDS,
    REPUTATION,
    REPUTATION_FIELDS,
    SUPPLY_FIELDS,
    SUPPLY_KEY,
    StateTree,
    Tree,
)
from .encoding import INT_MAX, INT_MIN

_ACCOUNT_ROW = itemgetter(*ACCOUNT_FIELDS)
_REPUTATION_ROW = itemgetter(*REPUTATION_FIELDS)
# Canonical bytes of [key, value]: compact JSON, the value's keys in code-point order.
_ACCOUNT_LEAF = b'[%b,{"balance":%d,"escrow":%d,"incoming":%d,"vouchers":%d}]'
_REPUTATION_LEAF = b'[%b,{"forked":%b,"negative":%d,"positive":%d,"score_ppm":%d}]'
Value = tuple[Any, ...]
# Names the leaf encoding a `StateBuilder.dump` was made with: a dump of another is not restored.
FORMAT = "state-tree-1:" + hashlib.sha256(b"|".join(
    [_ACCOUNT_LEAF, _REPUTATION_LEAF, *(",".join(f).encode() for f in (ACCOUNT_FIELDS, REPUTATION_FIELDS,
                                                                         SUPPLY_FIELDS))])).hexdigest()[:16]


def _ints(key: str, values: Iterable[Any]) -> list[int]:
    out = [int(v) for v in values]
    if out and (min(out) < INT_MIN or max(out) > INT_MAX):
        raise ValueError(f"{key[:18]}… has a value outside signed 64 bits")
    return out


def leaf_bytes(key: str, value: Value) -> bytes:
    """Canonical `[key, value]` of a state entry given as its field tuple (in `*_FIELDS` order)."""
    name = orjson.dumps(key)
    if key.startswith(ACCOUNT):
        return _ACCOUNT_LEAF % (name, *_ints(key, value))
    if key.startswith(REPUTATION):
        score, positive, negative = _ints(key, value[:3])
        return _REPUTATION_LEAF % (name, b"true" if value[3] else b"false", negative, positive, score)
    return orjson.dumps([key, dict(zip(SUPPLY_FIELDS, _ints(key, value), strict=True))], option=orjson.OPT_SORT_KEYS)


_SUPPLY_COLUMNS = ("minted", "balance", "escrow", "incoming", "vouchers", "burnt")  # in SUPPLY_FIELDS order


def leaves_of(keys: list[str], values: list[Value]) -> list[bytes]:
    """`leaf_bytes` of many entries at once: one range check over all of them, then each
    formatted by its template (`%d` formats an int as `int()` would, as `state_entries` reads)."""
    if values and (min(map(min, values)) < INT_MIN or max(map(max, values)) > INT_MAX):
        for key, value in zip(keys, values, strict=True):
            _ints(key, value[:3] if key.startswith(REPUTATION) else value)  # raises, naming the entry
    dumps, out = orjson.dumps, []
    for key, value in zip(keys, values, strict=True):
        if key.startswith(ACCOUNT):
            out.append(_ACCOUNT_LEAF % (dumps(key), *value))
        elif key.startswith(REPUTATION):
            out.append(_REPUTATION_LEAF % (dumps(key), b"true" if value[3] else b"false", value[2], value[1], value[0]))
        else:
            out.append(leaf_bytes(key, value))
    return out


def supply_of(accounts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The supply leaf's totals over the balances projection's rows (a missing field is 0)."""
    rows = accounts.values()
    try:  # a column at a time, in C (transposing row tuples with zip(*rows) cost ~6x more)
        totals = [sum(map(itemgetter(f), rows)) for f in _SUPPLY_COLUMNS]
    except KeyError:
        totals = [sum(r.get(f, 0) for r in rows) for f in _SUPPLY_COLUMNS]
    return dict(zip(SUPPLY_FIELDS, totals, strict=True))


def _levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    sha = hashlib.sha256
    level, levels = leaf_hashes, [leaf_hashes]
    while len(level) > 1:
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
        levels.append(level)
    return levels


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a build or a restore allocates tens of thousands of
    small tuples and lists that form no cycles, and the collections their count triggers
    walk the whole heap (the projections' rows included): about a third of a restore's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Kind:
    """One projection's rows as the last build saw them, in the projection dict's own order:
    while that order is unchanged (no row added or removed), a row's place in the sorted
    state tree is unchanged too, and a build only compares value tuples."""

    def __init__(self, prefix: str, getter: itemgetter[Any], fields: tuple[str, ...]) -> None:
        self.prefix, self.getter, self.fields = prefix, getter, fields
        self.order: list[str] = []
        self.values: list[Value] = []
        self.places: list[int] = []  # index of each row's leaf in the sorted tree

    def read(self, rows: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[Value]]:
        """(keys, value tuples) of `rows` in dict order."""
        try:
            values = list(map(self.getter, rows.values()))
        except KeyError:  # a row without some field: 0 (or False), as `state_entries` reads it
            values = [tuple(r.get(f, 0) for f in self.fields) for r in rows.values()]
        return list(rows), values


class StateBuilder:
    """State trees of successive checkpoints of one node (see the module docstring).
    Not thread-safe: the caller builds under its own lock."""

    def __init__(self) -> None:
        self._kinds = (_Kind(ACCOUNT, _ACCOUNT_ROW, ACCOUNT_FIELDS),
                       _Kind(REPUTATION, _REPUTATION_ROW, REPUTATION_FIELDS))
        self._keys: list[str] = []
        self._values: list[Value] = []
        self._leaves: list[bytes] = []
        self._levels: list[list[bytes]] = [[]]
        self._supply_at = 0  # the supply leaf's index
        self.rehashed = 0  # leaves re-encoded by the last build (for tests and the bench)

    def build(self, accounts: Mapping[str, Mapping[str, Any]], reputation: Mapping[str, Mapping[str, Any]],
              supply: Mapping[str, Any] | None = None) -> StateTree:
        """The state tree over these projection rows (`supply` defaults to `supply_of(accounts)`);
        its root equals `StateTree.build(state_entries(accounts, reputation, supply))`'s."""
        with _collector_paused():
            return self._build(accounts, reputation, supply)

    def _build(self, accounts: Mapping[str, Mapping[str, Any]], reputation: Mapping[str, Mapping[str, Any]],
               supply: Mapping[str, Any] | None) -> StateTree:
        totals = supply_of(accounts) if supply is None else supply
        supply_value = tuple(totals.get(f, 0) for f in SUPPLY_FIELDS)
        read = [kind.read(rows) for kind, rows in zip(self._kinds, (accounts, reputation), strict=True)]
        same_order = all(keys == kind.order for kind, (keys, _) in zip(self._kinds, read, strict=True))
        if self._keys and same_order:
            changed: list[tuple[int, Value]] = []
            for kind, (_, values) in zip(self._kinds, read, strict=True):
                old, places = kind.values, kind.places
                moved = compress(range(len(values)), map(ne, values, old))  # the rows whose tuple differs, in C
                changed.extend((places[i], values[i]) for i in moved)
            at = self._supply_at
            if self._values[at] != supply_value:
                changed.append((at, supply_value))
            self._update(changed)  # raises before it changes anything: the rows are then read again
            for kind, (_, values) in zip(self._kinds, read, strict=True):
                kind.values = values
        else:
            found: list[int | None] = []  # each row's leaf in the last build, looked up by the row's own key
            for kind, (keys, _) in zip(self._kinds, read, strict=True):
                found.extend(map(dict(zip(kind.order, kind.places, strict=True)).get, keys))
            if self._keys and len(found) + 1 == len(self._keys) and None not in found:
                places = cast(list[int], found)  # the same keys in another order (a restart, a rebuild)
                new = list(chain.from_iterable(values for _, values in read))
                old = self._values
                moved = compress(range(len(places)), map(ne, new, map(old.__getitem__, places)))
                changed = [(places[i], new[i]) for i in moved]
                if old[self._supply_at] != supply_value:
                    changed.append((self._supply_at, supply_value))
                self._update(changed)
                cut = len(read[0][0])
                per_kind = [places[:cut], places[cut:]]
            else:
                prefixed = [[kind.prefix + k for k in keys] for kind, (keys, _) in zip(self._kinds, read, strict=True)]
                entries: dict[str, Value] = {}
                for names, (_, values) in zip(prefixed, read, strict=True):
                    entries.update(zip(names, values, strict=True))
                entries[SUPPLY_KEY] = supply_value
                index = self._rebuild(entries)
                per_kind = [list(map(index.__getitem__, names)) for names in prefixed]
            for kind, kind_places, (keys, values) in zip(self._kinds, per_kind, read, strict=True):
                kind.order, kind.values, kind.places = keys, values, kind_places
        return StateTree(list(self._keys), Tree.from_levels(list(self._leaves), [list(x) for x in self._levels]))

    def dump(self) -> bytes:
        """The last build as bytes `restore` takes (empty before the first build): a header
        naming the leaf format, then keys and values (JSON), leaf bytes (one per line: compact
        JSON has no raw newline) and every level's hashes. A node keeps it with its store so
        that its first build after a restart rehashes only what changed since (core/checkpoints)."""
        if not self._keys:
            return b""
        values = orjson.dumps([self._keys, self._values])
        leaves = b"\n".join(self._leaves)
        levels = b"".join(b"".join(level) for level in self._levels)
        body = values + leaves + levels
        return b"%b %d %d %d %d %b\n" % (FORMAT.encode(), len(self._keys), len(values), len(leaves), len(levels),
                                          hashlib.sha256(body).hexdigest().encode()) + body

    def restore(self, data: bytes, checks: int = 64) -> str | None:
        """Take a `dump` as this builder's last build; None if taken, else why not (then the
        builder is as it was). Every value is compared with the rows at the next build, so a
        dump of older rows only costs the leaves changed since; one of another leaf format,
        cut short, unsorted, or whose sampled leaves (`checks` of them at random, and the nodes
        above them) do not hash as stored, or whose bytes do not match the digest it carries is
        refused: it never yields a wrong root."""
        with _collector_paused():
            return self._restore(data, checks)

    def _restore(self, data: bytes, checks: int) -> str | None:
        try:
            head, _, rest = data.partition(b"\n")
            fmt, *sizes, digest = head.split(b" ")
            if fmt != FORMAT.encode():
                return "another leaf format"
            n, a, b, c = map(int, sizes)
            if len(rest) != a + b + c or hashlib.sha256(rest).hexdigest().encode() != digest:
                return "damaged: its bytes do not hash as its header says"
            keys, values = orjson.loads(rest[:a])
            leaves = rest[a:a + b].split(b"\n")
            flat = rest[a + b:]
            hashes = [flat[i:i + 32] for i in range(0, len(flat), 32)]
            values = [tuple(v) for v in values]
        except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
            return "not a state tree dump"
        levels, width, at = [], n, 0
        while True:
            levels.append(hashes[at:at + width])
            at += width
            if width <= 1:
                break
            width //= 2
        if not (n == len(keys) == len(values) == len(leaves)) or at != len(hashes) or len(flat) % 32:
            return "sizes do not add up"
        if set(map(type, keys)) != {str} or not all(map(str.__lt__, keys, keys[1:])):
            return "keys not strictly sorted"
        if SUPPLY_KEY not in keys:
            return "no supply leaf"
        sha = hashlib.sha256
        for i in {*random.sample(range(n), min(n, checks)), keys.index(SUPPLY_KEY)}:
            try:
                good = leaf_bytes(keys[i], values[i]) == leaves[i] and sha(b"\x00" + leaves[i]).digest() == levels[0][i]
            except (ValueError, TypeError, IndexError):
                good = False
            for depth in range(1, len(levels)):
                i >>= 1
                if i < len(levels[depth]):
                    below = levels[depth - 1]
                    good = good and sha(b"\x01" + below[2 * i] + below[2 * i + 1]).digest() == levels[depth][i]
            if not good:
                return "a sampled leaf or node does not hash as stored"
        self._keys, self._values, self._leaves, self._levels = keys, values, leaves, levels
        self._supply_at = keys.index(SUPPLY_KEY)
        for kind in self._kinds:  # each kind's rows are a run of the sorted keys
            lo = bisect_left(keys, kind.prefix)
            hi = bisect_left(keys, kind.prefix[:-1] + chr(ord(kind.prefix[-1]) + 1))
            cut = len(kind.prefix)
            kind.order, kind.values, kind.places = [k[cut:] for k in keys[lo:hi]], values[lo:hi], list(range(lo, hi))
        return None

    def _update(self, changed: list[tuple[int, Value]]) -> None:
        """Same keys: re-encode the changed leaves and rehash the nodes above them."""
        sha, keys, levels = hashlib.sha256, self._keys, self._levels
        encoded = [leaf_bytes(keys[at], value) for at, value in changed]  # may raise: nothing changed yet
        for (at, value), data in zip(changed, encoded, strict=True):
            self._values[at] = value
            self._leaves[at] = data
            levels[0][at] = sha(b"\x00" + data).digest()
        self.rehashed = len(changed)
        dirty = {at for at, _ in changed}
        for depth in range(1, len(levels)):
            below, level = levels[depth - 1], levels[depth]
            parents = {i >> 1 for i in dirty if (i >> 1) < len(level)}
            for p in parents:
                level[p] = sha(b"\x01" + below[2 * p] + below[2 * p + 1]).digest()
            dirty = parents

    def _rebuild(self, entries: Mapping[str, Value]) -> dict[str, int]:
        """Keys changed: reuse each unchanged leaf's bytes and hash, rehash every interior node.
        Returns each key's new index."""
        sha = hashlib.sha256
        old_values, old_leaves, old_hashes = self._values, self._leaves, self._levels[0]
        keys = sorted(entries)
        values = [entries[k] for k in keys]
        if not self._keys:  # the first build: every leaf is new
            leaves = leaves_of(keys, values)
            hashes = [sha(b"\x00" + d).digest() for d in leaves]
            rehashed = len(keys)
        else:
            old_index = {k: i for i, k in enumerate(self._keys)}
            leaves, hashes, rehashed = [], [], 0
            for key, value in zip(keys, values, strict=True):
                at = old_index.get(key)
                if at is not None and old_values[at] == value:
                    leaves.append(old_leaves[at])
                    hashes.append(old_hashes[at])
                else:
                    data = leaf_bytes(key, value)
                    leaves.append(data)
                    hashes.append(sha(b"\x00" + data).digest())
                    rehashed += 1
        index = {k: i for i, k in enumerate(keys)}
        self._keys, self._values, self._leaves = keys, values, leaves
        self._supply_at = index[SUPPLY_KEY]
        self._levels = _levels(hashes)
        self.rehashed = rehashed
        return index
