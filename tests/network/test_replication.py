"""Several real nodes on loopback replicate one ledger: concurrent transfers converge to
one state hash; a node killed hard and restarted catches up; a partitioned node
converges once back; a fresh node takes its seed's network and only that one."""

from __future__ import annotations

import asyncio
import random

import pytest

from ledger_net.network.client import PeerClient
from tests.support.replication import Node, converged, memory_ledger, start_cluster, stop_all
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

MINT = 1_000_000


async def mint_to_all(nodes: list[Node]) -> None:
    issuer = nodes[0]
    for node in nodes:
        await issuer.append("credit.minted", {"to": node.id, "amount": MINT, "reason": "seed money"})
    await wait_until(lambda: all(len(n.ledger.state.open_credits_to(n.id)) == 1 for n in nodes[1:]), 20,
                     what="every node to see its mint")
    for node in nodes[1:]:
        await node.receive_all()


async def transfers(node: Node, others: list[Node], count: int, rng: random.Random) -> int:
    """`count` transfers to random peers, receiving incoming credits in between."""
    sent = 0
    for _ in range(count):
        await node.receive_all()
        amount = rng.randint(1, 500)
        if node.balance() >= amount:
            await node.append("credit.transfer", {"to": rng.choice(others).id, "amount": amount})
            sent += 1
        await asyncio.sleep(rng.random() * 0.01)
    return sent


async def settle(nodes: list[Node], timeout: float = 40.0) -> None:
    """Receive every open credit on every node until all nodes hold identical state."""

    async def done() -> bool:
        for node in nodes:
            if node.server.running:
                await node.receive_all()
        return converged(nodes) and not any(n.ledger.state.open_credits_to(n.id) for n in nodes)

    await wait_until(done, timeout, interval=0.1, what="convergence")


def check_books(nodes: list[Node]) -> None:
    states = [n.ledger.state for n in nodes]
    assert all(s.conserved() for s in states)
    supply = states[0].supply()
    assert supply["minted"] == MINT * len(nodes) and supply["in_transit"] == 0
    assert sum(states[0].spendable(n.id) for n in nodes) == MINT * len(nodes)
    for node in nodes:  # what every node says equals a replay of its own log
        assert node.runner.state_hash(node.runner.replay()) == node.runner.state_hash()


async def test_concurrent_transfers_converge(tmp_path):
    nodes = await start_cluster(tmp_path, 4)
    try:
        await mint_to_all(nodes)
        rng = random.Random(7)
        sent = await asyncio.gather(*(transfers(n, [o for o in nodes if o is not n], 25, random.Random(rng.random()))
                                      for n in nodes))
        assert sum(sent) > 50
        await settle(nodes)
        check_books(nodes)
        # every node learned every other's URL from the ledger
        for node in nodes:
            assert {p["node_id"] for p in node.server.list_peers() if p["status"] == "connected"} >= \
                {o.id for o in nodes if o is not node}
    finally:
        await stop_all(nodes)


async def test_hard_killed_node_restarts_and_catches_up(tmp_path):
    nodes = await start_cluster(tmp_path, 3, flush_every=10_000)
    a, b, c = nodes
    try:
        await mint_to_all(nodes)
        rng = random.Random(11)
        await asyncio.gather(transfers(a, [b, c], 10, rng), transfers(c, [a, b], 10, rng))
        port = c.server.port
        # kill c hard mid-activity: no projection flush, no orderly close of its database
        activity = asyncio.create_task(transfers(a, [b, c], 20, rng))
        await asyncio.sleep(0.05)
        await c.stop(hard=True)
        c.ledger.store.engine.dispose()
        await activity
        await transfers(b, [a, c], 15, rng)
        assert c.ledger.store.count() < a.ledger.store.count()

        c.reopen()  # new Ledger and ProjectionRunner over the same SQLite file
        try:
            await c.start(port=port)
        except Exception:
            await c.start(port=0)
            await c.server.announce("n2")
        await settle(nodes)
        check_books(nodes)
    finally:
        await stop_all(nodes)


async def test_partitioned_node_converges_when_back(tmp_path):
    nodes = await start_cluster(tmp_path, 3)
    a, b, c = nodes
    try:
        await mint_to_all(nodes)
        port = c.server.port
        await c.stop()  # partition: c keeps its books and keeps working offline
        rng = random.Random(5)
        await asyncio.gather(transfers(a, [b, c], 15, rng), transfers(b, [a, c], 15, rng),
                             transfers(c, [a, b], 10, rng))
        offline = c.ledger.head()[0]
        assert a.ledger.head(c.id)[0] < offline  # the others have not seen c's offline events
        await c.start(port=port)
        await settle(nodes)
        assert a.ledger.head(c.id)[0] >= offline
        check_books(nodes)
    finally:
        await stop_all(nodes)


async def test_fresh_node_joins_and_refuses_other_networks(tmp_path):
    nodes = await start_cluster(tmp_path, 2)
    alien = Node(tmp_path, "alien")
    alien.ledger.create_network("another-net")
    await alien.start()
    try:
        for i in range(30):
            await nodes[0].append("credit.minted", {"to": nodes[1].id, "amount": i + 1, "reason": "r"})
        fresh = Node(tmp_path, "fresh", seeds=[alien.url, nodes[1].url], expected_net=nodes[0].ledger.net)
        await fresh.start()
        nodes.append(fresh)
        await fresh.server.wait_for_network(10)
        assert fresh.ledger.net == nodes[0].ledger.net
        await wait_until(lambda: converged(nodes), 20, what="the fresh node to catch up")
        alien_peer = fresh.server.discovery.by_url(alien.url)
        assert alien_peer.failures > 0 and "network" in alien_peer.last_error
        assert fresh.ledger.event(alien.ledger.net) is None
        # the alien cannot connect either way
        with pytest.raises(Exception, match="network"):
            await alien.server.connect_to_node(fresh.url)
        async with PeerClient(fresh.url) as client:
            heads = await client.heads()
        assert heads["net"] == nodes[0].ledger.net
    finally:
        await stop_all(nodes)
        await alien.stop()
        alien.close()


async def test_fresh_node_without_pin_takes_first_network(tmp_path):
    """Without `expected_net` a fresh node adopts its seed's network; bulk catch-up goes
    through the causal feed (nothing is left pending)."""
    nodes = await start_cluster(tmp_path, 1)
    seed = nodes[0]
    ledger = memory_ledger()
    try:
        for i in range(120):
            await seed.append("credit.minted", {"to": seed.id, "amount": 1, "reason": f"{i}"})
        fresh = Node(tmp_path, "fresh2", seeds=[seed.url], bulk_threshold=50, page_size=40)
        await fresh.start()
        nodes.append(fresh)
        await wait_until(lambda: converged(nodes), 20, what="feed catch-up")
        assert len(fresh.ledger.pending) == 0
        assert fresh.server.sync._feed_cursor.get(seed.url, 0) > 0  # the feed path was used
    finally:
        ledger.close()
        await stop_all(nodes)
