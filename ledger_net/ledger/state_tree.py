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

Leaf bytes are formatted from a template per kind instead of through `canonical_bytes`; they
are the same bytes (tests/ledger/test_state_tree.py checks them against `state_leaf`). Each
build returns an immutable `StateTree`; the builder's own lists are copied, never shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from itertools import compress
from operator import itemgetter, ne
from typing import Any

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
_SUPPLY_ROW = itemgetter(*_SUPPLY_COLUMNS)


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
    try:
        columns = list(map(_SUPPLY_ROW, accounts.values()))
    except KeyError:
        columns = [tuple(r.get(f, 0) for f in _SUPPLY_COLUMNS) for r in accounts.values()]
    totals = [sum(c) for c in zip(*columns, strict=True)] if columns else [0] * len(SUPPLY_FIELDS)
    return dict(zip(SUPPLY_FIELDS, totals, strict=True))


def _levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    sha = hashlib.sha256
    level, levels = leaf_hashes, [leaf_hashes]
    while len(level) > 1:
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
        levels.append(level)
    return levels


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
        self._index: dict[str, int] = {}
        self.rehashed = 0  # leaves re-encoded by the last build (for tests and the bench)

    def build(self, accounts: Mapping[str, Mapping[str, Any]], reputation: Mapping[str, Mapping[str, Any]],
              supply: Mapping[str, Any] | None = None) -> StateTree:
        """The state tree over these projection rows (`supply` defaults to `supply_of(accounts)`);
        its root equals `StateTree.build(state_entries(accounts, reputation, supply))`'s."""
        totals = supply_of(accounts) if supply is None else supply
        supply_value = tuple(totals.get(f, 0) for f in SUPPLY_FIELDS)
        read = [kind.read(rows) for kind, rows in zip(self._kinds, (accounts, reputation), strict=True)]
        if self._keys and all(keys == kind.order for kind, (keys, _) in zip(self._kinds, read, strict=True)):
            changed: list[tuple[int, Value]] = []
            for kind, (_, values) in zip(self._kinds, read, strict=True):
                old, places = kind.values, kind.places
                moved = compress(range(len(values)), map(ne, values, old))  # the rows whose tuple differs, in C
                changed.extend((places[i], values[i]) for i in moved)
            at = self._index[SUPPLY_KEY]
            if self._values[at] != supply_value:
                changed.append((at, supply_value))
            self._update(changed)  # raises before it changes anything: the rows are then read again
            for kind, (_, values) in zip(self._kinds, read, strict=True):
                kind.values = values
        else:
            entries: dict[str, Value] = {}
            for kind, (keys, values) in zip(self._kinds, read, strict=True):
                entries.update(zip([kind.prefix + k for k in keys], values, strict=True))
            entries[SUPPLY_KEY] = supply_value
            self._rebuild(entries)
            for kind, (keys, values) in zip(self._kinds, read, strict=True):
                kind.order, kind.values = keys, values
                kind.places = [self._index[kind.prefix + k] for k in keys]
        return StateTree(list(self._keys), Tree.from_levels(list(self._leaves), [list(x) for x in self._levels]))

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

    def _rebuild(self, entries: Mapping[str, Value]) -> None:
        """Keys changed: reuse each unchanged leaf's bytes and hash, rehash every interior node."""
        sha = hashlib.sha256
        old_index, old_values, old_leaves, old_hashes = self._index, self._values, self._leaves, self._levels[0]
        keys = sorted(entries)
        values = [entries[k] for k in keys]
        if not old_index:  # the first build: every leaf is new
            leaves = leaves_of(keys, values)
            hashes = [sha(b"\x00" + d).digest() for d in leaves]
            rehashed = len(keys)
        else:
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
        self._keys, self._values, self._leaves = keys, values, leaves
        self._index = {k: i for i, k in enumerate(keys)}
        self._levels = _levels(hashes)
        self.rehashed = rehashed
