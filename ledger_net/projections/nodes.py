"""Nodes of the network: who joined, their label, URL, capabilities, load and standing.

The ledger is its own directory: `node.joined` carries each node's URL, which is
how peers find each other.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, Literal, cast

import orjson
from sqlalchemy import Connection, Table, select

from ..ledger import encoding
from ..ledger.events import Event
from .base import Context, DigestLines, Projection, RowBatch
from .rows import NodeInfo, NodeRow
from .tables import nodes

_COLS: tuple[Literal["name", "url", "node_type", "status", "capabilities", "load", "events", "forked_at", "last_ts"],
              ...] = ("name", "url", "node_type", "status", "capabilities", "load", "events", "forked_at", "last_ts")


# The event types whose body `apply` reads; any other event only counts for its author.
_NODE_TYPES = frozenset({"node.joined", "node.updated", "node.left", "fork.proof"})
_AUTHOR, _TS, _TS_OF_PAIR = itemgetter(2), itemgetter(5), itemgetter(1)
_values = itemgetter(*_COLS)  # a row's columns after node_id, in the table's order


def _json(value: Any) -> str:
    return encoding.canonical_bytes(value).decode("utf-8")


class NodesProjection(Projection):
    name = "nodes"
    tables = (nodes,)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.nodes: dict[str, NodeRow] = {}
        self._dirty: set[str] = set()
        self._lines = DigestLines()  # the state hash's line of each node

    def node(self, key: str) -> NodeRow:
        row = self.nodes.get(key)
        if row is None:
            row = {"name": key[:16], "url": None, "node_type": "client", "status": "unknown",
                   "capabilities": "{}", "load": "{}", "events": 0, "forked_at": None, "last_ts": 0}
            self.nodes[key] = row
        self._dirty.add(key)
        return row

    def apply(self, offset: int, event: Event, reason: str | None, ctx: Context) -> None:
        fork_seq = ctx.frozen.get(event.author)
        if fork_seq is not None and event.seq >= fork_seq:
            # Which branch of a forker a peer stored depends on arrival order: count neither.
            self.node(event.author)["forked_at"] = fork_seq
            return
        row = self.node(event.author)
        row["events"] += 1
        row["last_ts"] = max(row["last_ts"], event.ts)
        if event.author in ctx.frozen:
            row["forked_at"] = ctx.frozen[event.author]
        if reason is not None:
            return
        b = event.body
        if event.type == "node.joined":
            row.update({"name": b["name"], "url": b.get("url"), "node_type": b.get("node_type", "client"),
                        "status": "online", "capabilities": _json(b.get("capabilities", {}))})
        elif event.type == "node.updated":
            for field in ("name", "url", "status"):
                if field in b:
                    row[field] = b[field]
            if "capabilities" in b:
                row["capabilities"] = _json(b["capabilities"])
            if "load" in b:
                row["load"] = _json(b["load"])
        elif event.type == "node.left":
            row["status"] = "offline"
        elif event.type == "fork.proof":
            target = self.node(b["author"])
            target["forked_at"] = min(b["seq"], target["forked_at"] or b["seq"])

    def fold_rows(self, batch: RowBatch, ctx: Context) -> None:
        """`apply` over a batch: node events and a forker's events one by one, in order; every
        other event only counts towards its author's `events` and `last_ts`, which commute, so
        those are added per author, with C-level counting, whatever their order."""
        rows, frozen = batch.rows, ctx.frozen
        if frozen or not batch.types.isdisjoint(_NODE_TYPES):
            own = [i for i, r in enumerate(rows) if r[4] in _NODE_TYPES or r[2] in frozen]
            self.apply_rows(batch, own, ctx)
            if own:
                skip = set(own)
                rows = [r for i, r in enumerate(rows) if i not in skip]
        authors = list(map(_AUTHOR, rows))
        last = dict(sorted(zip(authors, map(_TS, rows), strict=True), key=_TS_OF_PAIR))  # each author's newest ts
        node = self.node
        for author, n in Counter(authors).items():
            row = node(author)
            row["events"] += n
            ts = last[author]
            if ts > row["last_ts"]:
                row["last_ts"] = ts

    def rows(self) -> dict[Table, list[dict[str, Any]]]:
        return {nodes: [dict(node_id=k, **v) for k, v in self.nodes.items()]}

    def dirty_rows(self) -> dict[Table, tuple[list[Any], list[dict[str, Any]]]]:
        keys, rows = self._take_dirty()
        return {nodes: (keys, [dict(zip(("node_id", *_COLS), row, strict=True)) for row in rows])}

    def flush_rows(self) -> dict[Table, tuple[list[Any], Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]]]]:
        keys, rows = self._take_dirty()
        return {nodes: (keys, rows)}

    def _take_dirty(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The changed nodes' keys and rows (tuples in the table's column order); forgets them."""
        keys = sorted(self._dirty)
        self._lines.mark(self._dirty)
        self._dirty = set()
        rows = self.nodes
        return keys, [(k, *_values(rows[k])) for k in keys]

    def load(self, conn: Connection, offset: int) -> None:
        self.reset()
        for row in conn.execute(select(nodes)).mappings():
            self.nodes[row["node_id"]] = cast(NodeRow, {c: row[c] for c in _COLS})
        self._lines.mark(self.nodes)

    def digest_items(self) -> Iterable[Any]:
        for key in sorted(self.nodes):
            yield self._item(key)

    def _item(self, key: str) -> list[Any] | None:
        row = self.nodes.get(key)
        # last_ts and event counts are the same on every peer holding the same events
        return None if row is None else [key, _values(row)]  # a tuple: the same JSON array

    def state_hash(self) -> str:
        """`Projection.state_hash` of `digest_items`, with each node's line kept between hashes
        (`DigestLines`): only those changed since are encoded again."""
        h = hashlib.sha256()
        self._lines.feed(h, self._item, self._dirty)
        return h.hexdigest()

    def describe(self, key: str) -> NodeInfo:
        """Node `key`'s row with its id and its JSON columns decoded (KeyError if unknown)."""
        row = self.nodes[key]
        info: NodeInfo = {"node_id": key, "name": row["name"], "url": row["url"], "node_type": row["node_type"],
                          "status": row["status"], "events": row["events"], "forked_at": row["forked_at"],
                          "last_ts": row["last_ts"], "capabilities": orjson.loads(row["capabilities"]),
                          "load": orjson.loads(row["load"])}
        return info
