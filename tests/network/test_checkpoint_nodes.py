"""Checkpoints over real node servers (issue 14 item 7): three nodes each sign a checkpoint,
each cosigns the other two's, and a light client verifies balances through any node's HTTP
API; a node that shows two peers two inconsistent checkpoints is caught and frozen."""

from __future__ import annotations

import asyncio

import aiohttp

from ledger_net import light
from ledger_net.ledger import checkpoint as cp
from ledger_net.ledger.events import Event
from tests.support.replication import start_cluster, stop_all
from tests.support.waiting import wait_until

FAST_CHECKPOINTS = {"checkpoint_poll": 0.1}


async def _get(url: str, path: str, **params: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url + path, params=params) as resp:
        return resp.status, await resp.json()


async def _books(nodes):
    """n0 (the issuer) pays n1 and n2, who receive."""
    n0, n1, n2 = nodes
    await n0.append("credit.minted", {"to": n0.id, "amount": 10_000, "reason": "seed"})
    await n0.append("credit.transfer", {"to": n1.id, "amount": 3_000})
    await n0.append("credit.transfer", {"to": n2.id, "amount": 2_000})
    await wait_until(lambda: all(n.ledger.state.open_credits_to(n.id) for n in (n1, n2)), what="credits in transit")
    await n1.receive_all()
    await n2.receive_all()
    await n1.append("credit.transfer", {"to": n2.id, "amount": 500})
    await wait_until(lambda: len({n.ledger.store.count() for n in nodes}) == 1, what="books replicated")


async def test_each_node_cosigns_the_others_and_a_light_client_verifies_through_any(tmp_path):
    nodes = await start_cluster(tmp_path, 3, **FAST_CHECKPOINTS)
    try:
        await _books(nodes)
        made = [await n.server.run_write(n.server.checkpoints.make) for n in nodes]

        def all_cosigned() -> bool:
            return all({c.author for c in n.server.checkpoints.cosignature_events(m.hash)} ==
                       {o.id for o in nodes if o.id != m.author} for n in nodes for m in made)
        await wait_until(all_cosigned, timeout=30, what="every checkpoint cosigned by the two other nodes")
        witnesses = [n.id for n in nodes]
        net = nodes[0].ledger.net
        for n in nodes:  # through any node, of any node's checkpoint
            for m in made:
                status, proof = await _get(n.url, f"/api/v1/proofs/balance/{nodes[2].id}", at=m.hash)
                assert status == 200, proof
                verdict = light.verify_balance(proof, net=net, witnesses=witnesses, threshold=3,
                                               account=nodes[2].id)
                assert verdict.ok, verdict
                assert proof["leaf"]["value"]["balance"] == 2_000 and proof["leaf"]["value"]["incoming"] == 500
            status, listed = await _get(n.url, "/api/v1/checkpoints")
            assert status == 200 and {c["hash"] for c in listed["checkpoints"]} >= {m.hash for m in made}
        # an event proof and an author's growth between two checkpoints, through the API
        transfer = [e for e in nodes[1].ledger.stored() if e.type == "credit.transfer"][0]
        status, proof = await _get(nodes[0].url, f"/api/v1/proofs/event/{transfer.hash}")
        assert status == 200 and light.verify_event(proof, net=net, witnesses=witnesses, threshold=2).ok
        status, growth = await _get(nodes[1].url, f"/api/v1/proofs/consistency/{nodes[0].id}",
                                    old=made[0].hash, new=made[2].hash)
        assert status == 200
        assert light.verify_checkpoint_consistency(growth, net=net, witnesses=witnesses, threshold=2).ok
        # an account with no entry: the proof of its absence, through any node
        status, absent = await _get(nodes[1].url, f"/api/v1/proofs/balance/{'ab' * 32}", at=made[0].hash)
        assert status == 200 and absent["type"] == "absence", absent
        assert light.verify_absence(absent, net=net, witnesses=witnesses, threshold=3, account="ab" * 32).ok
        # bad requests are 4xx JSON, never a trace
        for path, params, want in ((f"/api/v1/proofs/balance/{'zz' * 32}", {}, 400),
                                   (f"/api/v1/proofs/event/{'ab' * 32}", {}, 404),
                                   ("/api/v1/checkpoints/nothex", {}, 400),
                                   (f"/api/v1/checkpoints/{'ab' * 32}", {}, 404),
                                   (f"/api/v1/proofs/consistency/{nodes[0].id}", {"old": made[0].hash}, 400),
                                   ("/api/v1/checkpoints", {"limit": "0"}, 400)):
            status, body = await _get(nodes[0].url, path, **params)
            assert status == want and "error" in body, (path, status, body)
    finally:
        await stop_all(nodes)


async def test_split_view_is_caught(tmp_path):
    """n0 signs a checkpoint, then a later one that names fewer of n1's events than the first
    (shown to whoever syncs next). The first witness to compare the two publishes the conflict; every node then
    freezes n0 and nobody cosigns the later checkpoint."""
    nodes = await start_cluster(tmp_path, 3, **FAST_CHECKPOINTS)
    try:
        await _books(nodes)
        n0, n1, n2 = nodes
        first = await n0.server.run_write(n0.server.checkpoints.make)
        await wait_until(lambda: len(n0.server.checkpoints.cosignature_events(first.hash)) == 2, timeout=30,
                         what="the honest checkpoint cosigned")

        def lie():
            frontier, state = n0.server.checkpoints.applied_frontier()
            before = {a: s for a, s, _ in first.body["frontier"]}[n1.id]
            shrunk = []
            for a, s, r in frontier:
                if a == n1.id:  # fewer of n1's events than the first checkpoint named
                    s, r = before - 1, n0.ledger.store.author_root(a, before - 1).hex()
                shrunk.append([a, s, r])
            body = cp.make_body(net=n0.ledger.net, signer=n0.id, sign=n0.ledger.identity.sign, frontier=shrunk,
                                state=state, ts=first.body["ts"] + 1)
            return n0.ledger.append(cp.CHECKPOINT_SIGNED, body)

        later = await n0.server.run_write(lie)
        await wait_until(lambda: all(n0.id in n.ledger.state.frozen for n in (n1, n2)), timeout=30,
                         what="n0 frozen on both witnesses")
        conflicts = [Event.from_wire(e.raw, e.sig) for n in (n1, n2) for e in n.ledger.stored()
                     if e.type == cp.CHECKPOINT_CONFLICT]
        assert conflicts and all(e.body["seq"] == later.seq for e in conflicts)
        for n in nodes:
            assert not n.server.checkpoints.cosignature_events(later.hash)
        await wait_until(lambda: n0.id in n0.ledger.state.frozen, timeout=30, what="the liar learns it too")
    finally:
        await stop_all(nodes)


async def test_a_node_signs_every_n_events_when_configured_and_not_otherwise(tmp_path):
    nodes = await start_cluster(tmp_path, 2, **FAST_CHECKPOINTS)
    try:
        n0, n1 = nodes
        n0.server.checkpoints.every_events = 5  # as `checkpoint_every = 5` in a node's config
        for i in range(6):
            await n0.append("node.updated", {"status": f"s{i}"})
        await wait_until(lambda: n0.server.checkpoints.latest(n0.id) is not None, what="a checkpoint after 5 events")
        first = n0.server.checkpoints.latest(n0.id)
        await wait_until(lambda: len(n0.server.checkpoints.cosignature_events(first.hash)) == 1, timeout=30,
                         what="n1 cosigns it")
        assert n1.server.checkpoints.latest(n1.id) is None  # n1 was not asked to sign any
        await asyncio.sleep(0.5)
        assert n0.server.checkpoints.latest(n0.id).hash == first.hash  # nothing new: no new checkpoint
    finally:
        await stop_all(nodes)


async def _join_authors(n0, n1, count: int, prefix: str) -> list[Event]:
    """``count`` new authors join on n0 (one node.joined each); returns once n1 holds them too."""
    from ledger_net.ledger.identity import Identity

    authors = [Identity.from_seed(i.to_bytes(4, "big") * 8) for i in range(1, count + 1)]
    joined = [Event.create(who, net=n0.ledger.net, seq=1, prev=None, type="node.joined", body={"name": f"{prefix}{i}"},
                           ts=1) for i, who in enumerate(authors)]
    await n0.server.run_write(n0.ledger.ingest, joined)
    await wait_until(lambda: n1.ledger.store.count() == n0.ledger.store.count(), timeout=60,
                     what=f"the {count:,} authors replicated")
    return joined


async def test_a_thousand_author_frontier_travels_as_a_blob_and_is_cosigned(tmp_path):
    """1,000 authors: the checkpoint event names its frontier as a blob; the witness fetches it
    from its peer, checks it and cosigns; a light client verifies an event through it."""
    nodes = await start_cluster(tmp_path, 2, **FAST_CHECKPOINTS)
    try:
        n0, n1 = nodes
        joined = await _join_authors(n0, n1, 1000, "x")
        made = await n0.server.run_write(n0.server.checkpoints.make)
        assert made.body["authors"] > 1000 and made.body["frontier"] == []
        await wait_until(lambda: n1.server.checkpoints.cosignature_events(made.hash), timeout=30,
                         what="n1 fetched the frontier blob and cosigned")
        await wait_until(lambda: n0.server.checkpoints.cosignature_events(made.hash), timeout=30,
                         what="the cosignature back on n0")
        status, frontier = await _get(n1.url, f"/api/v1/checkpoints/{made.hash}/frontier")
        assert status == 200 and len(frontier["frontier"]) == made.body["authors"]
        status, proof = await _get(n0.url, f"/api/v1/proofs/event/{joined[123].hash}", at=made.hash)
        assert status == 200, proof
        verdict = light.verify_event(proof, net=n0.ledger.net, witnesses=[n0.id, n1.id], threshold=2)
        assert verdict.ok, verdict
    finally:
        await stop_all(nodes)


async def test_a_frontier_blob_no_peer_has_is_backed_off_then_fetched_once_served(tmp_path):
    """A checkpoint names a detached frontier its signer does not serve yet: the witness's loop
    misses it and backs it off (instead of asking every peer every round), then fetches it once
    the signer holds it, and cosigns."""
    nodes = await start_cluster(tmp_path, 2, **FAST_CHECKPOINTS)
    try:
        n0, n1 = nodes
        await _join_authors(n0, n1, 300, "y")
        service = n0.server.checkpoints
        frontier, state = await n0.server.run_write(service.applied_frontier)
        body = cp.make_body(net=n0.ledger.net, signer=n0.id, sign=n0.ledger.identity.sign, frontier=frontier,
                            state=state, ts=1)
        blob, data = cp.detached_frontier(cp.sorted_frontier(frontier))
        assert body["frontier_blob"] == blob and n0.ledger.store.get_blob(blob) is None
        made = await n0.append(cp.CHECKPOINT_SIGNED, body)  # the blob kept nowhere yet
        witness = n1.server.checkpoints
        await wait_until(lambda: witness._wanted.get(blob, (0, 0.0))[0] >= 1, timeout=30,
                         what="n1 missed the blob once")
        assert not witness.cosignature_events(made.hash)
        await n0.server.run_write(n0.ledger.store.put_blob, blob, data)
        await wait_until(lambda: witness.cosignature_events(made.hash), timeout=30,
                         what="n1 fetched the blob after its backoff and cosigned")
        assert blob not in witness._wanted
    finally:
        await stop_all(nodes)
