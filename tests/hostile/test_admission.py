"""Admission for strangers (issue 10, items 3 and 5).

Orphans (valid signatures, unknown `prev`) from thousands of throwaway keys neither
fill the pending buffer for established authors nor keep the node fetching their past:
a legitimate out-of-order event still waits in the buffer (never 503 `pending_full`),
the strangers' entries expire, each orphan author is fetched a bounded number of times,
and an honest transfer keeps replicating. One stranger's burst is throttled (429 with
`Retry-After`) while an established author's events are not.
"""

from __future__ import annotations

import os

import aiohttp
import orjson
import pytest

from ledger_net.errors import PendingLimitError
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.network.protocol import API
from ledger_net.network.transfer import ORPHAN_ATTEMPTS
from tests.support.replication import converged, forge, start_cluster, stop_all, wire_hash
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

LIVENESS_BOUND = 20.0
ORPHAN_KEYS = 3000


async def push(session: aiohttp.ClientSession, url: str, events: list[dict]) -> tuple[int, dict, dict]:
    async with session.post(f"{url}{API}/events", json={"events": events}) as resp:
        body = await resp.read()
        assert resp.content_type == "application/json", body[:200]
        return resp.status, orjson.loads(body), dict(resp.headers)


async def test_an_orphan_flood_does_not_block_a_legit_out_of_order_event_and_expires(tmp_path):
    nodes = await start_cluster(tmp_path, 2)
    issuer, target = nodes
    net = issuer.ledger.net
    carol = Identity.generate()  # established on `target`: funded by the issuer
    target.ledger.pending.ttl = 2.0
    try:
        mint = await issuer.append("credit.minted", {"to": carol.node_id, "amount": 1000, "reason": "stake"})
        await wait_until(lambda: target.ledger.event(mint.hash) is not None, LIVENESS_BOUND, what="carol's stake")
        assert target.ledger.state.is_established(carol.node_id)
        statuses: dict[int, int] = {}
        throttled = 0
        async with aiohttp.ClientSession() as session:
            for _start in range(0, ORPHAN_KEYS, 250):  # bounded: 12 pushes of 250 orphans
                orphans = [forge(Identity.generate(), net=net, seq=2, prev=os.urandom(32).hex(), type="node.updated",
                                 body={}) for _ in range(250)]
                status, body, headers = await push(session, target.url, orphans)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 429:
                    assert int(headers["Retry-After"]) >= 1 and body["error"]["code"] == "too_many_requests"
                    throttled += len(orphans)
                else:
                    assert status == 200 and body["stored"] == 0, body
                    throttled += len(body["throttled"])
            assert not [s for s in statuses if s >= 500], statuses
            assert throttled > ORPHAN_KEYS // 2, (throttled, statuses)  # the source's quota for strangers ran out
            pending = target.ledger.pending
            assert 0 < pending.strangers <= pending.max_strangers
            # carol's seq 2 arrives before her seq 1: it waits, it is not refused
            first = forge(carol, net=net, seq=1, prev=None, type="node.joined", body={"name": "carol"})
            second = forge(carol, net=net, seq=2, prev=wire_hash(first), type="node.updated", body={"name": "c2"})
            status, body, _ = await push(session, target.url, [second])
            assert status == 200 and body["pending"] == 1, body
            status, body, _ = await push(session, target.url, [first])
            assert status == 200 and body["stored"] == 2, body
        # the strangers' orphans expire, and nobody fetches their past without end
        await wait_until(lambda: target.ledger.pending.strangers == 0, 20, what="the orphans to expire")
        assert target.ledger.pending.expired > 0
        attempts = target.server.sync._orphan_attempts
        assert all(count <= ORPHAN_ATTEMPTS for count, _ in attempts.values())
        # honest replication goes on
        await issuer.append("credit.minted", {"to": issuer.id, "amount": 10, "reason": "r"})
        transfer = await issuer.append("credit.transfer", {"to": target.id, "amount": 3})
        await wait_until(lambda: target.ledger.event(transfer.hash) is not None, LIVENESS_BOUND,
                         what="an honest transfer after the flood")
        await wait_until(lambda: converged(nodes), LIVENESS_BOUND, what="the honest nodes to agree")
    finally:
        await stop_all(nodes)


async def test_a_strangers_burst_is_throttled_but_an_established_author_is_not(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    node = nodes[0]
    net = node.ledger.net
    stranger, carol = Identity.generate(), Identity.generate()
    await node.append("credit.minted", {"to": carol.node_id, "amount": 1000, "reason": "stake"})

    def chain(identity: Identity, count: int) -> list[dict]:
        events, prev = [], None
        for seq in range(1, count + 1):
            event = forge(identity, net=net, seq=seq, prev=prev, type="node.updated" if seq > 1 else "node.joined",
                          body={"name": f"e{seq}"})
            events.append(event)
            prev = wire_hash(event)
        return events

    try:
        async with aiohttp.ClientSession() as session:
            status, body, _ = await push(session, node.url, chain(stranger, 200))
            assert status == 200, body
            assert 0 < body["stored"] < 200 and len(body["throttled"]) == 200 - body["stored"]
            status, body, headers = await push(session, node.url, chain(stranger, 200)[body["stored"]:])
            assert status == 429 and "Retry-After" in headers, body
            status, body, _ = await push(session, node.url, chain(carol, 200))
            assert status == 200 and body["stored"] == 200 and not body["throttled"], body
    finally:
        await stop_all(nodes)


def test_strangers_orphans_cannot_take_the_pending_buffer_from_established_authors():
    """Orphans that bypass the push quotas (e.g. pulled from a peer that holds them) are
    still confined to the strangers' share of the pending buffer, per author and per source;
    an established author's out-of-order event then waits instead of being refused."""
    issuer = Identity.generate()
    origin = Ledger.open("sqlite://", issuer)
    origin.create_network("pending-test", issuers=[issuer.node_id])
    node = Ledger.open("sqlite://", Identity.generate(), pending_limit=400)
    try:
        node.ingest([origin.event(origin.net)])
        net = origin.net
        for peer in ("peer-a", "peer-b", "peer-c"):
            orphans = [forge(Identity.generate(), net=net, seq=2, prev=os.urandom(32).hex(), type="node.updated",
                             body={}) for _ in range(150)]
            report = node.ingest([Event.from_json(o) for o in orphans], source=peer)
            assert not report.stored and len(report.pending) + len(report.throttled) == 150
        pending = node.pending
        assert pending.strangers <= pending.max_strangers == 100
        assert all(count <= pending.per_source for count in pending._by_source.values())
        # the issuer's chain arrives out of order: it waits, it is not refused
        later = [origin.append("node.updated", {"name": f"i{i}"}) for i in range(350)]
        report = node.ingest(later[1:])  # all but the first: every one must wait
        assert len(report.pending) == 349 and not report.throttled
        assert pending.evicted > 0  # strangers made room
        with pytest.raises(PendingLimitError):  # the buffer is now full of established events
            node.ingest([origin.append("node.updated", {"name": f"x{i}"}) for i in range(60)][1:])
        report = node.ingest(later[:1])
        assert len(report.stored) == 350
        # a stranger's entries expire
        pending.ttl = 0.0
        assert pending.expire() > 0 and pending.strangers == 0
    finally:
        origin.close()
        node.close()
