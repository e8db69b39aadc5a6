"""What moves in one exchange with a peer (see `sync` for when and with whom): pulling the
chains or the causal feed the peer is ahead on, fetching the causal past that pending events
wait for, and pushing what the peer lacks; every page verified and ingested as one batch.

`Transfers` is mixed into `Synchronizer`, which owns the state it uses (declared below). It is
over 400 lines because pull, fetch and push share one ingest path and that state; split
further they would be mixins of mixins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import LedgerError, NetworkError
from ..ledger.chain import Ledger
from ..ledger.crypto_pool import WireChecks
from ..ledger.identity import is_public_key
from ..ledger.wire import to_wire
from .client import PeerClient, PeerRefused
from .discovery import Peer
from .incoming import checked_wire_events, ledger_error, parse_wire_events, wire_pairs
from .responses import ApiError

log = logging.getLogger("ledger_net.network.sync")  # one logger for a sync's whole story (docs/operations.md)
T = TypeVar("T")

ORPHAN_AUTHORS_PER_ROUND = 16  # authors whose missing chain prefix one exchange fetches
ORPHAN_ATTEMPTS = 4  # fetches of one author's missing prefix before its orphans are dropped
ORPHAN_BACKOFF = 1.0  # seconds before the second fetch; doubles with each attempt
# Where the feed reader checks the pages it reads ahead: "parsed": the ledger's worker processes
# parse them and check their signatures (`Ledger.check_wire_ahead`), taking the parsing off the
# receiver, which is GIL-bound on HTTP, parsing, judging, writing and projections; "threads" /
# "processes": parsed here, signatures checked on the ledger's threads / worker processes
# (processes alone only added the hand-off: 0.49-0.55 x verify against 0.55-0.61 on threads;
# bench/replication_bench.py --checks, docs/performance.md).
FEED_CHECKS = "parsed"


def _set(event: asyncio.Event) -> None:
    event.set()


class PeerMisbehaved(NetworkError):
    """A peer served events this node refuses (forged, malformed, another network)."""

class Transfers:
    """Pull, fetch and push (mixed into `Synchronizer`)."""

    ledger: Ledger
    run_write: Callable[..., Awaitable[Any]]
    run_read: Callable[..., Awaitable[Any]]
    _our_heads: Callable[[], Awaitable[dict[str, Any]]] | None
    _feed_cursor: dict[str, int]
    _orphan_attempts: dict[str, tuple[int, float]]
    _pending_drops: list[Callable[[], None]]
    _bulk_pool: ThreadPoolExecutor | None
    bulk_lanes: int
    bulk_threshold: int
    expected_net: str | None
    page_size: int
    wave_budget: int
    round_budget: int
    wanted_limit: int
    push_batch: int
    push_budget: int
    push_bytes: int

    # ------------------------------------------------------------------ helpers
    async def _ingest(self, items: Sequence[dict[str, Any]], peer_url: str, *,
                      expect_hashes: Sequence[str] | None = None, locked: asyncio.Event | None = None) -> int:
        """Verify and ingest wire items from a peer; returns how many were stored.
        A full pending buffer ends the step quietly (next round fetches the past first)."""
        if not items:
            return 0
        ledger = self.ledger
        if expect_hashes is not None:
            items = [dict(item, hash=h) for item, h in zip(items, expect_hashes, strict=False)]

        loop = asyncio.get_running_loop()

        def work() -> int:
            ledger.known.prefetch_wire(items)  # one query for the page, not one per event
            events = parse_wire_events(items, ledger.net, skip=ledger.known.__contains__)
            if not events:
                return 0
            try:
                return len(ledger.ingest(events, source=peer_url).stored)
            except LedgerError as exc:
                raise ledger_error(exc) from None

        def ordered_work(locked: asyncio.Event) -> int:
            # Take the ledger's (re-entrant) lock before ingesting and tell the puller, so the
            # next page starts only now: its signature checks run while this page is applied,
            # and it can take the lock only after this page, so pages apply in feed order.
            with ledger.locked():
                loop.call_soon_threadsafe(_set, locked)
                return work()

        try:
            if locked is not None and self.bulk_lanes > 1:
                if self._bulk_pool is None:
                    self._bulk_pool = ThreadPoolExecutor(max_workers=self.bulk_lanes, thread_name_prefix="sync-bulk")
                return await loop.run_in_executor(self._bulk_pool, ordered_work, locked)
            return await self.run_write(work)
        except ApiError as exc:
            return _refused_page(exc, peer_url)

    async def _heads(self) -> dict[str, int]:
        if self._our_heads is not None:
            heads = (await self._our_heads())["heads"]
            return {a: v[0] for a, v in heads.items()}
        rows = await self.run_read(self.ledger.store.heads)
        return {a: s for a, (s, _) in rows.items()}

    async def _adopt_network(self, client: PeerClient, net: str) -> None:
        """A fresh node takes the network of its first peer (or the pinned `expected_net`)."""
        if self.expected_net is not None and net != self.expected_net:
            raise PeerMisbehaved(f"{client.url} is on network {net[:16]}…, this node expects "
                                 f"{self.expected_net[:16]}…")
        wire = await client.event(net)
        if wire is None:
            raise PeerMisbehaved(f"{client.url} names network {net[:16]}… but does not serve its genesis")
        stored = await self._ingest([wire], client.url, expect_hashes=[net])
        if self.ledger.net != net:
            raise PeerMisbehaved(f"{client.url}: event {net[:16]}… is not a genesis (stored {stored})")
        log.info("joined network %s from %s", net[:16], client.url)

    def _gaps(self, their_heads: dict[str, Any], mine: dict[str, int]) -> dict[str, list[int]]:
        frozen = dict(self.ledger.state.frozen)
        gaps: dict[str, list[int]] = {}
        for author, value in their_heads.items():
            if not is_public_key(author) or not isinstance(value, list) or not value or type(value[0]) is not int:
                continue
            top = value[0]
            if author in frozen:
                top = min(top, frozen[author] - 1)
            have = mine.get(author, 0)
            if top > have:
                gaps[author] = [have + 1, top]
        return gaps

    # ------------------------------------------------------------------ pull
    async def _pull(self, client: PeerClient, peer: Peer, theirs: dict[str, Any]) -> int:
        mine = await self._heads()
        gaps = self._gaps(theirs["heads"], mine)
        if not gaps:
            return 0
        missing = sum(top - start + 1 for start, top in gaps.values())
        cursor = self._feed_cursor.get(peer.url, 0)
        their_last = theirs.get("last_offset")
        if isinstance(their_last, int) and cursor > their_last:
            cursor = self._feed_cursor[peer.url] = 0  # the peer's log was replaced
        if missing >= self.bulk_threshold and (cursor > 0 or missing > sum(mine.values())):
            pulled = await self._pull_feed(client, peer, cursor)
            mine = await self._heads()
            gaps = self._gaps(theirs["heads"], mine)
        else:
            pulled = 0
        return pulled + await self._pull_chains(client, gaps)

    async def _pull_chains(self, client: PeerClient, gaps: dict[str, list[int]]) -> int:
        pulled, budget = 0, self.round_budget
        sem = asyncio.Semaphore(4)

        async def page(author: str, start: int, count: int) -> list[dict[str, Any]]:
            async with sem:
                return await client.chain(author, start, count)

        while gaps and budget > 0:
            share = max(50, min(self.page_size, self.wave_budget // len(gaps), budget))
            authors = list(gaps)
            counts = [min(share, gaps[a][1] - gaps[a][0] + 1) for a in authors]
            pages = await asyncio.gather(*(page(a, gaps[a][0], c) for a, c in zip(authors, counts, strict=False)))
            items: list[dict[str, Any]] = []
            for author, count, events in zip(authors, counts, pages, strict=False):
                if len(events) > count:
                    raise PeerMisbehaved(f"{client.url} sent {len(events)} events for a page of {count}")
                items.extend(events)
                gaps[author][0] += len(events)
                if not events or gaps[author][0] > gaps[author][1]:
                    del gaps[author]
            if not items:
                break
            budget -= len(items)
            pulled += await self._ingest(items, client.url)
        return pulled

    async def _pull_feed(self, client: PeerClient, peer: Peer, cursor: int) -> int:
        """Catch up through the peer's causal feed. The next page downloads while the current
        ones are verified, and up to `bulk_lanes` pages are ingested at once: the ledger
        verifies a batch's signatures before taking its lock, so one page's signature checks
        (which release the GIL) overlap the previous page's rule checks and writes. A page
        is started only once the previous one holds the ledger lock, so pages apply in feed
        order and nothing waits in the pending buffer."""
        if self.bulk_lanes <= 1:
            return await self._pull_feed_ahead(client, peer, cursor)
        pulled, budget = 0, self.round_budget
        size = self.page_size
        nxt: asyncio.Task[dict[str, Any]] | None = asyncio.create_task(client.feed(cursor, size))
        inflight: deque[tuple[asyncio.Task[int], int, asyncio.Event]] = deque()
        try:
            while nxt is not None and budget > 0:
                page = await nxt
                nxt = None
                events = page["events"]
                if not events:
                    break
                last, more = _page_end(page, inflight[-1][1] if inflight else cursor, size, client.url)
                budget -= len(events)
                if more and budget > 0:
                    nxt = asyncio.create_task(client.feed(last, size))
                if inflight:  # the previous page must hold the ledger lock before this one starts
                    await asyncio.wait({asyncio.ensure_future(inflight[-1][2].wait()), inflight[-1][0]},
                                       return_when=asyncio.FIRST_COMPLETED)
                locked = asyncio.Event()
                inflight.append((asyncio.create_task(self._ingest(events, client.url, locked=locked)), last, locked))
                while len(inflight) >= self.bulk_lanes:
                    task, offset, _ = inflight.popleft()
                    pulled += await task
                    cursor = self._feed_cursor[peer.url] = offset
            while inflight:
                task, offset, _ = inflight.popleft()
                pulled += await task
                cursor = self._feed_cursor[peer.url] = offset
        finally:
            leftovers: list[asyncio.Task[Any]] = [t for t, _, _ in inflight] + ([nxt] if nxt is not None else [])
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
        return pulled

    async def _pull_feed_ahead(self, client: PeerClient, peer: Peer, cursor: int) -> int:
        """`_pull_feed` with one writer: while a page is judged and written (on the writer
        thread), the next one is downloaded, parsed off the loop and its signatures are
        checked on the ledger's pool (`Ledger.verify_ahead`), so every core verifies while
        one thread writes. Pages still apply one at a time in feed order."""
        pulled, budget, size = 0, self.round_budget, self.page_size
        nxt: asyncio.Task[dict[str, Any]] | None = asyncio.create_task(client.feed(cursor, size))
        current: tuple[asyncio.Task[Any] | list[Any], int] | None = None  # (prepared page or its items, offset)
        try:
            while True:
                page = await nxt if nxt is not None else None
                nxt = None
                following: tuple[asyncio.Task[Any] | list[Any], int] | None = None
                events = page["events"] if page is not None else []
                if events and page is not None:
                    last, more = _page_end(page, current[1] if current is not None else cursor, size, client.url)
                    budget -= len(events)
                    if more and budget > 0:
                        nxt = asyncio.create_task(client.feed(last, size))
                    # without a network yet the page after the genesis cannot be parsed ahead
                    ahead = self.ledger.net is not None
                    following = (asyncio.create_task(self._prepare(events)) if ahead else events, last)
                if current is not None:
                    pulled += await self._apply_prepared(current[0], client.url)
                    cursor = self._feed_cursor[peer.url] = current[1]
                if following is None:
                    break
                current = following
        finally:
            leftovers: list[asyncio.Task[Any]] = [t for t in (nxt, current[0] if current else None)
                                                  if isinstance(t, asyncio.Task) and not t.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
        return pulled

    async def _prepare(self, items: Sequence[dict[str, Any]]) -> tuple[list[Any], Any]:
        """Start a page's checks and return its events and their signature checks: by default
        (`FEED_CHECKS == "parsed"`) the ledger's worker processes parse the wire pairs and check
        their signatures (`Ledger.check_wire_ahead`) and only building the events is left to
        this process; else the page is parsed here, off the loop, and its signatures are
        checked on the ledger's threads or processes. A page that is not plainly well formed,
        or whose parse fails in a worker, is parsed here, so the peer's error is the same."""
        ledger = self.ledger
        loop = asyncio.get_running_loop()
        net = ledger.net

        def parse_here() -> tuple[list[Any], Any]:
            events = parse_wire_events(items, net, skip=ledger.known.__contains__)
            return events, ledger.verify_ahead(events, processes=FEED_CHECKS == "processes")

        def start() -> tuple[list[Any], Any] | tuple[WireChecks, list[int]]:
            wire = None
            if FEED_CHECKS == "parsed" and net:
                wire = wire_pairs(items, skip=ledger.known.__contains__, prefetch=ledger.known.prefetch)
            if wire is None:
                ledger.known.prefetch_wire(items)
                return parse_here()
            pairs, hashes, indexes = wire
            return ledger.check_wire_ahead(pairs, hashes=hashes), indexes

        started = await loop.run_in_executor(None, start)
        if not isinstance(started[0], WireChecks):
            return started
        checks, indexes = started
        await asyncio.gather(*(asyncio.wrap_future(f) for f in checks.futures()), return_exceptions=True)

        def finish() -> tuple[list[Any], Any]:
            assert net is not None  # a page is parsed in the workers only on a network
            try:
                return checked_wire_events(checks, indexes, net)
            except LedgerError:  # a malformed event: the page is parsed here for the peer's error
                return parse_here()

        return await loop.run_in_executor(None, finish)

    async def _apply_prepared(self, prepared: asyncio.Task[Any] | list[Any], peer_url: str) -> int:
        """Ingest a page prepared by `_prepare` (or, given its items, parse it now) on the writer."""
        if not isinstance(prepared, asyncio.Task):
            return await self._ingest(prepared, peer_url)
        try:
            events, checks = await prepared
        except ApiError as exc:
            raise _misbehaved(exc, peer_url) from None
        if not events:
            return 0
        ledger = self.ledger

        def work() -> int:
            try:
                return len(ledger.ingest(events, source=peer_url, checks=checks).stored)
            except LedgerError as exc:
                raise ledger_error(exc) from None

        try:
            return await self.run_write(work)
        except ApiError as exc:
            return _refused_page(exc, peer_url)

    # ------------------------------------------------------------------ wanted
    def _due_orphans(self, chains: dict[str, int]) -> dict[str, int]:
        """The authors (at most `ORPHAN_AUTHORS_PER_ROUND`) whose missing chain prefix is due
        for a fetch. Each author gets `ORPHAN_ATTEMPTS` fetches with exponential backoff;
        after that a stranger's waiting events are dropped (an orphan flood costs a bounded
        number of requests, never a fetch per author per round); an established author's
        keep being fetched, at most every 30 s."""
        now = time.monotonic()
        attempts = self._orphan_attempts
        for author in [a for a in attempts if a not in chains]:
            del attempts[author]  # its past arrived or its orphans expired
        due: dict[str, int] = {}
        given_up: list[str] = []
        for author, seq in chains.items():
            count, next_at = attempts.get(author, (0, 0.0))
            if next_at > now:
                continue
            if count >= ORPHAN_ATTEMPTS and not self.ledger.state.is_established(author):
                given_up.append(author)  # a stranger's orphans: no more fetches, drop them
                continue
            if len(due) >= ORPHAN_AUTHORS_PER_ROUND:
                break
            attempts[author] = (count + 1, now + min(ORPHAN_BACKOFF * (2 ** count), 30.0))
            due[author] = seq
        if given_up:
            ledger = self.ledger

            def drop() -> None:
                for author in given_up:
                    ledger.pending.drop_author(author)
                    attempts.pop(author, None)

            self._pending_drops.append(drop)
        return due

    async def _fetch_wanted(self, client: PeerClient) -> int:
        """Fetch what pending events wait for: chain prefixes by segment (bounded per author,
        see `_due_orphans`), the rest by hash."""
        ledger = self.ledger
        chains = await self.run_write(ledger.pending.wanted_chains)
        chains = self._due_orphans(chains)
        due = set(chains)
        hashes = await self.run_write(lambda: list(ledger.pending.wanted_for(due)))
        drops, self._pending_drops = self._pending_drops, []
        if drops:
            await self.run_write(lambda: [d() for d in drops])
        fetched = 0
        if chains:
            mine = await self._heads()
            gaps = {a: [mine.get(a, 0) + 1, s - 1] for a, s in chains.items() if s - 1 > mine.get(a, 0)}
            frozen = dict(ledger.state.frozen)
            gaps = {a: g for a, g in gaps.items() if a not in frozen}
            if gaps:
                fetched += await self._pull_chains(client, gaps)
                hashes = await self.run_write(lambda: list(ledger.pending.wanted_for(due)))
        hashes = hashes[: self.wanted_limit]
        if not hashes:
            return fetched
        sem = asyncio.Semaphore(8)

        async def one(h: str) -> dict[str, Any] | None:
            async with sem:
                return await client.event(h)

        answers = await asyncio.gather(*(one(h) for h in hashes))
        found = [(a, h) for a, h in zip(answers, hashes, strict=False) if a is not None]
        if found:
            fetched += await self._ingest([a for a, _ in found], client.url, expect_hashes=[h for _, h in found])
        return fetched

    # ------------------------------------------------------------------ push
    async def _push(self, client: PeerClient, theirs: dict[str, Any]) -> int:
        """Send the peer the chain segments it lacks (bounded per round)."""
        mine = await self._heads()
        their_heads = theirs["heads"]
        frozen = dict(self.ledger.state.frozen)
        me = self.ledger.identity.node_id if self.ledger.identity else None
        todo: list[tuple[str, int, int]] = []
        for author, top in mine.items():
            if author in frozen:
                top = min(top, frozen[author] - 1)
            value = their_heads.get(author)
            have = value[0] if isinstance(value, list) and value and type(value[0]) is int else 0
            if top > have:
                todo.append((author, have + 1, top))
        todo.sort(key=lambda t: (t[0] != me, t[0]))  # our own chain first
        pushed, budget = 0, self.push_budget
        batch: list[dict[str, Any]] = []
        batch_bytes = 0
        store = self.ledger.store

        async def send() -> bool:
            nonlocal pushed, batch, batch_bytes
            if not batch:
                return True
            try:
                await client.push(batch)
            except PeerRefused as exc:
                if exc.code == "pending_full":
                    return False
                log.warning("peer %s refused our push: %s", client.url, exc)
                return False
            pushed += len(batch)
            batch, batch_bytes = [], 0
            return True

        # a push is bounded in bytes (`push_bytes`) as well as in events: one POST never
        # nears the peer's request-size limit, however big the events
        for author, start, top in todo:
            while start <= top and budget > 0:
                count = min(self.push_batch - len(batch), top - start + 1, budget, 64)
                rows = await self.run_read(store.chain_segment, author, start, count)
                if not rows:
                    break
                for r in rows:
                    if batch and batch_bytes + len(r.raw) > self.push_bytes and not await send():
                        return pushed
                    batch.append(to_wire(r.raw, r.sig))
                    batch_bytes += len(r.raw)
                start = rows[-1].seq + 1
                budget -= len(rows)
                if (len(batch) >= self.push_batch or batch_bytes >= self.push_bytes) and not await send():
                    return pushed
        await send()
        return pushed


def _page_end(page: dict[str, Any], previous: int, size: int, url: str) -> tuple[int, bool]:
    """A non-empty feed page's last offset and whether to ask for more; a page that does not
    move past `previous`, or is longer than asked for, is the peer's misbehaviour. A page is
    cut by bytes as well as by count, so its own `more` flag says whether to go on."""
    events = page["events"]
    last = events[-1].get("offset") if isinstance(events[-1], dict) else None
    if type(last) is not int or last <= previous or len(events) > size:
        raise PeerMisbehaved(f"{url}: feed page does not advance its cursor")
    more = page.get("more")
    return last, more if isinstance(more, bool) else len(events) == size


def _misbehaved(exc: ApiError, peer_url: str) -> PeerMisbehaved:
    return PeerMisbehaved(f"{peer_url} served events this node refuses: {exc.code}: {exc.message}")


def _refused_page(exc: ApiError, peer_url: str) -> int:
    """A page the ledger refused: a full pending buffer ends the step quietly (0 stored; the
    next round fetches the causal past first); anything else is the peer's misbehaviour."""
    if exc.code != "pending_full":
        raise _misbehaved(exc, peer_url) from None
    log.info("pending buffer full while syncing with %s; fetching the causal past first", peer_url)
    return 0
