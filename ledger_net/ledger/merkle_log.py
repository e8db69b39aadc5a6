"""Per-author Merkle logs kept beside the events, in the same transaction.

Each author's chain is an RFC 9162 tree whose leaf s-1 is the event at seq s (leaf data:
the event's 32-byte digest, see `merkle`). The table `merkle_nodes` holds every complete
subtree of level >= STORED_LEVEL (4) as (author, level, idx, hash), node (level, idx)
covering leaves [idx * 2**level, (idx + 1) * 2**level). Lower nodes are not copied: they
are recomputed from at most 16 leaf hashes, each derived from `events.hash` through the
(author, seq) index. So an append writes a node row for one event in 8 on average (a row
per event cost a fifth of the append rate on SQLite), and a root or a proof still reads
O(log n) stored hashes plus at most 2 * 15 leaves.

This module only plans SQL over a `Query` callable, so the store's two write paths (its
raw DBAPI writer and a caller's Connection) share one piece of bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ChainError, ProofError
from . import merkle
from .merkle import Frontier, NodeFetcher, NodeId

Query = Callable[[str, Sequence[Any]], list[Any]]  # (driver SQL, parameters) -> rows
CACHE_AUTHORS = 4096  # frontiers kept in memory: an append then needs no read
STORED_LEVEL = 4  # nodes of this level and up are stored; below, recomputed from 2**level leaves


class MerkleLog:
    """The Merkle bookkeeping of one store: plans node rows for inserted events and
    serves roots and proofs. Keeps a small cache of committed frontiers."""

    def __init__(self, mark: str) -> None:
        self._mark = mark
        self.sql_insert = f"INSERT INTO merkle_nodes (author, level, idx, hash) VALUES ({mark}, {mark}, {mark}, {mark})"
        self._frontiers: dict[str, tuple[int, Frontier]] = {}  # author -> (size, frontier), committed only

    # ----------------------------------------------------------------- writing
    def plan(self, rows: Sequence[dict[str, Any]], query: Query
             ) -> tuple[list[tuple[Any, ...]], dict[str, tuple[int, Frontier]]]:
        """Node rows to insert for freshly inserted event rows, and each author's new
        frontier (to `remember` once committed). Raises ChainError, before anything of
        it is written, if an author's events do not extend its stored chain without a gap."""
        by_author: dict[str, list[tuple[int, str]]] = {}
        for r in rows:
            by_author.setdefault(r["author"], []).append((r["seq"], r["hash"]))
        inserts: list[tuple[Any, ...]] = []
        fronts: dict[str, tuple[int, Frontier]] = {}
        for author, items in by_author.items():
            items.sort()
            first = items[0][0]
            if any(seq != first + i for i, (seq, _) in enumerate(items)):
                raise ChainError(f"events of author {author[:16]}… leave a gap in its seqs: "
                                 f"{[seq for seq, _ in items][:8]}")
            size = first - 1
            frontier = self._frontier(author, size, query)
            try:
                leaves = [merkle.event_leaf(h) for _, h in items]
            except (TypeError, ValueError):
                raise ChainError(f"an event hash of author {author[:16]}… is not hex") from None
            frontier, created = merkle.extend(frontier, leaves)
            inserts.extend((author, level, idx, h) for level, idx, h in created if level >= STORED_LEVEL)
            fronts[author] = (size + len(items), frontier)
        return inserts, fronts

    def remember(self, fronts: dict[str, tuple[int, Frontier]]) -> None:
        """Cache frontiers of a committed write (never of an uncommitted one)."""
        for author, entry in fronts.items():
            self._frontiers.pop(author, None)
            while len(self._frontiers) >= CACHE_AUTHORS:
                self._frontiers.pop(next(iter(self._frontiers)))
            self._frontiers[author] = entry

    def forget(self) -> None:
        self._frontiers.clear()

    def _frontier(self, author: str, size: int, query: Query) -> Frontier:
        cached = self._frontiers.get(author)
        if cached is not None and cached[0] == size:
            return cached[1]
        ids = merkle.frontier_ids(size)
        try:
            hashes = self.fetcher(author, query)(ids)
        except LookupError:
            raise ChainError(f"seq {size + 1} of author {author[:16]}… does not extend its stored chain "
                             f"(no complete chain of size {size})") from None
        return [(level, idx, h) for (level, idx), h in zip(ids, hashes, strict=False)]

    # ----------------------------------------------------------------- reading
    def fetcher(self, author: str, query: Query) -> NodeFetcher:
        """A NodeFetcher over the stored nodes of `author` (LookupError if one is missing)."""
        m = self._mark

        def fetch(ids: Sequence[NodeId]) -> list[bytes]:
            found: dict[NodeId, bytes] = {}
            low = [(level, idx) for level, idx in ids if level < STORED_LEVEL]
            inner = [(level, idx) for level, idx in ids if level >= STORED_LEVEL]
            if low:  # one range of leaves per run of adjacent low nodes, by the (author, seq) index
                spans = _merged([(idx << level, (idx + 1) << level) for level, idx in low])
                one = f"SELECT seq, hash FROM events WHERE author = {m} AND seq > {m} AND seq <= {m}"
                leaf: dict[int, bytes] = {}
                for seq, h in query(" UNION ALL ".join([one] * len(spans)),
                                    [v for lo, hi in spans for v in (author, lo, hi)]):
                    leaf[seq - 1] = merkle.event_leaf(h)
                for level, idx in low:
                    span = range(idx << level, (idx + 1) << level)
                    if all(i in leaf for i in span):
                        found[(level, idx)] = merkle.root_of([leaf[i] for i in span])
            if inner:  # point lookups on the primary key (an OR of pairs would scan the author's rows)
                one = f"SELECT level, idx, hash FROM merkle_nodes WHERE author = {m} AND level = {m} AND idx = {m}"
                sql = " UNION ALL ".join([one] * len(inner))
                for level, idx, h in query(sql, [v for node in inner for v in (author, *node)]):
                    found[(level, idx)] = bytes(h)
            missing = [node for node in ids if node not in found]
            if missing:
                raise LookupError(f"Merkle nodes {missing[:4]} of author {author[:16]}… are not stored")
            return [found[node] for node in ids]

        return fetch

    def chain_size(self, author: str, query: Query) -> int:
        """How many events of `author` are stored (its highest seq: chains have no gaps)."""
        rows = query(f"SELECT MAX(seq) FROM events WHERE author = {self._mark}", [author])
        return int(rows[0][0] or 0) if rows else 0

    def root(self, author: str, size: int, query: Query) -> bytes:
        """Root of `author`'s chain as of `size` events."""
        self._within(author, 0, size, query)
        return self._served(lambda fetch: merkle.tree_root(size, fetch), author, query)

    def inclusion_proof(self, author: str, seq: int, size: int, query: Query) -> list[bytes]:
        """Proof that `author`'s event at `seq` is leaf seq-1 of its chain of `size` events."""
        if type(seq) is not int or type(size) is not int or not 1 <= seq <= size:
            raise ProofError(f"seq {seq!r} is not inside a chain of size {size!r}")
        self._within(author, 1, size, query)
        return self._served(lambda fetch: merkle.inclusion_proof(seq - 1, size, fetch), author, query)

    def consistency_proof(self, author: str, old_size: int, new_size: int, query: Query) -> list[bytes]:
        """Proof that `author`'s chain of `old_size` events is a prefix of that of `new_size`."""
        if type(old_size) is not int or type(new_size) is not int or not 0 <= old_size <= new_size:
            raise ProofError(f"chain size {old_size!r} cannot be a prefix of chain size {new_size!r}")
        self._within(author, 0, new_size, query)
        return self._served(lambda fetch: merkle.consistency_proof(old_size, new_size, fetch), author, query)

    def _within(self, author: str, least: int, size: int, query: Query) -> None:
        if not isinstance(author, str) or len(author) != 64:
            raise ProofError("author must be a 64-character public key in hex")
        if type(size) is not int or size < least:
            raise ProofError(f"chain size {size!r} must be an integer of at least {least}")
        have = self.chain_size(author, query)
        if size > have:
            raise ProofError(f"author {author[:16]}… has a chain of {have} events, not {size}")

    def _served(self, make: Callable[[NodeFetcher], Any], author: str, query: Query) -> Any:
        try:
            return make(self.fetcher(author, query))
        except LookupError as exc:  # events without their nodes: the store is damaged
            raise ProofError(f"the store cannot prove this: {exc}") from None


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open leaf ranges, sorted, with overlapping and adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out
