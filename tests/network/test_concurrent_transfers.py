"""Concurrent transfers over HTTP on a running node: local appends run on the append pool
(`NodeAPI.run_append`), so overlapping calls share commits (ledger/commit.py). Each response
must still name its own event, and the books must conserve every unit."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from ledger_net.ledger.identity import Identity
from ledger_net.main import ComputeNetwork
from ledger_net.network.client import PeerClient
from ledger_net.network.protocol import API
from tests.support.nodes import url_of

pytestmark = pytest.mark.timeout(120)

CALLS = 24


def units(amount: str) -> int:
    whole, cents = amount.split(".")
    return int(whole) * 10**6 + int(cents) * 10**4  # "1.07" credits at 6 decimals


async def test_concurrent_transfers_name_their_own_events_and_share_commits(async_node: ComputeNetwork) -> None:
    ledger, server = async_node.ledger, async_node.server
    assert ledger is not None and server is not None and server.api is not None
    me = ledger.node_id
    targets = [Identity.generate().node_id for _ in range(CALLS)]
    amounts = [f"1.{i + 1:02d}" for i in range(CALLS)]  # 1.01 .. 1.24 credits, each distinct
    groups_before, offset_before = ledger._group.groups, ledger.store.last_offset()

    # Hold the ledger's lock while the calls arrive, so they are certain to overlap: the
    # append pool's threads all wait for it, and the rest queue behind them.
    hold, release = threading.Event(), threading.Event()

    def holder() -> None:
        with ledger.locked():
            hold.set()
            release.wait(60)

    blocker = threading.Thread(target=holder)
    blocker.start()
    hold.wait(10)
    try:
        async with PeerClient.local(url_of(async_node), async_node.data_dir) as client:
            calls = [asyncio.ensure_future(client.request("POST", f"{API}/transfers", body={"to": t, "amount": a}))
                     for t, a in zip(targets, amounts, strict=True)]
            pool = server.api.appender
            for _ in range(1000):  # until every append thread is busy (they start on demand)
                if sum(t.name.startswith("ledger-append") for t in threading.enumerate()) >= pool._max_workers:
                    break
                await asyncio.sleep(0.01)
            release.set()
            sent = await asyncio.gather(*calls)
            seen = set()
            for target, amount, answer in zip(targets, amounts, sent, strict=True):
                assert answer["ok"] and answer["kind"] == "transfer"
                assert (await client.request("GET", f"{API}/events/{answer['event']}"))["valid"]
                stored = ledger.store.get_event(answer["event"])
                assert stored is not None and stored.seq == answer["seq"]
                envelope = orjson.loads(stored.raw)  # this call's own event, not another's
                assert envelope["author"] == me and envelope["body"] == {"to": target, "amount": units(amount)}
                seen.add(answer["event"])
                account = await client.request("GET", f"{API}/accounts/{target}")
                assert account["units"]["incoming"] == units(amount)
            assert len(seen) == CALLS
            mine = await client.request("GET", f"{API}/accounts/{me}")
    finally:
        release.set()
        blocker.join()

    assert ledger.store.last_offset() - offset_before == CALLS
    assert mine["units"]["balance"] == 100 * 10**6 - sum(units(a) for a in amounts)  # every unit accounted for
    commits = ledger._group.groups - groups_before
    assert commits < CALLS, f"{CALLS} overlapping transfers took {commits} commits: none was shared"
