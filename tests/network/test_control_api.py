"""The control API on a real `ComputeNetwork` (free loopback port, temporary data dir):
tasks, balance, accounts, transfers, history; every bad request is a 4xx JSON error
naming its cause, and changes nothing in the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from ledger_net.ledger.identity import Identity
from ledger_net.main import ComputeNetwork
from ledger_net.network import auth
from ledger_net.network.auth import TOKEN_HEADER
from ledger_net.network.client import PeerClient, PeerRefused
from ledger_net.network.protocol import API
from tests.support.nodes import AsyncNodeFactory, url_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def slow_async_node(async_node_factory: AsyncNodeFactory) -> ComputeNetwork:
    """Quotes are awaited 30 s: a task no node can run stays pending while a test looks at it."""
    return await async_node_factory("slow", quote_window=30.0)


async def refused(client: PeerClient, method: str, path: str, body: Any = None, **kw: Any) -> PeerRefused:
    with pytest.raises(PeerRefused) as info:
        await client.request(method, path, body=body, **kw)
    return info.value


async def wait_status(client: PeerClient, task_id: str, want: tuple[str, ...] = ("completed", "failed"),
                      timeout: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await client.request("GET", f"{API}/tasks/{task_id}")
        if status["status"] in want:
            return status
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.05)


RANGE = {"task_type": "range_reduce", "config": {"start": 1, "end": 1000, "operation": "sum", "max_price": 0.1}}


async def test_task_lifecycle(async_node: ComputeNetwork) -> None:
    async with PeerClient.local(url_of(async_node), async_node.data_dir) as client:
        created = await client.request("POST", f"{API}/tasks", body=RANGE)
        task_id = created["task_id"]
        assert created["status"] == "pending" and created["escrow"] == 0.1
        status = await wait_status(client, task_id)
        assert status["status"] == "completed" and status["progress"] == 1.0
        assert (await client.request("GET", f"{API}/tasks/{task_id}/result"))["result"] == 500500
        listed = await client.request("GET", f"{API}/tasks", params={"status": "completed"})
        assert [t["task_id"] for t in listed["tasks"]] == [task_id] and listed["total"] == 1
        assert (await client.request("GET", f"{API}/tasks", params={"status": "failed"}))["tasks"] == []
        mine = await client.request("GET", f"{API}/tasks", params={"owner": "me", "limit": 1})
        assert mine["tasks"][0]["owner_id"] == async_node.ledger.node_id  # type: ignore[union-attr]
        again = await client.request("POST", f"{API}/tasks/{task_id}/cancel")
        assert again == {"task_id": task_id, "cancelled": False, "status": "completed", "refund": status["refund"]}
        matrix = {"task_type": "matrix_ops", "config": {"matrix_a": [[1.0, 2.0], [3.0, 4.0]],
                                                         "matrix_b": [[1.0, 0.0], [0.0, 1.0]],
                                                         "operation": "multiply", "max_price": 0.1}}
        m_id = (await client.request("POST", f"{API}/tasks", body=matrix))["task_id"]
        await wait_status(client, m_id, ("completed",))
        assert (await client.request("GET", f"{API}/tasks/{m_id}/result"))["result"] == [[1.0, 2.0], [3.0, 4.0]]


async def test_cancel_and_result_of_unfinished_task(slow_async_node: ComputeNetwork) -> None:
    async with PeerClient.local(url_of(slow_async_node), slow_async_node.data_dir) as client:
        unrunnable = {**RANGE, "requirements": {"ram_gb": 10**6}}  # no node bids on it
        task_id = (await client.request("POST", f"{API}/tasks", body=unrunnable))["task_id"]
        err = await refused(client, "GET", f"{API}/tasks/{task_id}/result")
        assert (err.status, err.code) == (409, "not_completed") and "has no result" in err.message
        before = (await client.request("GET", f"{API}/balance"))["balance"]
        cancelled = await client.request("POST", f"{API}/tasks/{task_id}/cancel")
        assert cancelled["cancelled"] is True and cancelled["status"] == "cancelled" and cancelled["refund"] == 0.1
        assert (await client.request("GET", f"{API}/balance"))["balance"] == pytest.approx(before + 0.1)
        err = await refused(client, "GET", f"{API}/tasks/{task_id}/result")
        assert err.status == 409 and "cancelled" in err.message
        assert (await client.request("GET", f"{API}/tasks/{task_id}"))["status"] == "cancelled"
        await asyncio.sleep(0.2)  # let the engine see the cancel before the fixture stops it


async def test_bad_task_requests_change_nothing(async_node: ComputeNetwork) -> None:
    ledger = async_node.ledger
    assert ledger is not None
    before = ledger.store.last_offset()
    async with PeerClient.local(url_of(async_node), async_node.data_dir) as client:
        err = await refused(client, "POST", f"{API}/tasks", {"task_type": "teleport"})
        assert (err.status, err.code) == (400, "invalid_task") and "teleport" in err.message
        err = await refused(client, "POST", f"{API}/tasks", {"task_type": "map", "config": {"operation": "square"}})
        assert err.code == "invalid_task" and "data" in err.message
        err = await refused(client, "POST", f"{API}/tasks", [1, 2])
        assert (err.status, err.code) == (400, "malformed_request")
        poor = {"task_type": "map", "config": {"data": [1], "operation": "square", "max_price": 10**6}}
        err = await refused(client, "POST", f"{API}/tasks", poor)
        assert (err.status, err.code) == (402, "insufficient_credits")
        err = await refused(client, "POST", f"{API}/tasks", {**RANGE, "config": {**RANGE["config"], "max_price": "x"}})
        assert err.status == 400 and "max_price" in err.message
        for path in (f"{API}/tasks/task-nope", f"{API}/tasks/task-nope/result"):
            err = await refused(client, "GET", path)
            assert (err.status, err.code) == (404, "unknown_task")
        err = await refused(client, "POST", f"{API}/tasks/task-nope/cancel")
        assert err.status == 404
        err = await refused(client, "GET", f"{API}/tasks", params={"status": "sleeping"})
        assert (err.status, err.code) == (400, "bad_parameter")
        err = await refused(client, "GET", f"{API}/tasks", params={"limit": "0"})
        assert err.code == "bad_parameter"
    async with aiohttp.ClientSession() as session, session.post(f"{url_of(async_node)}{API}/tasks", data=b"{not json",
                            headers={TOKEN_HEADER: async_node.server.token,
                                     "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "malformed_json"
    assert ledger.store.last_offset() == before


async def test_money_routes(async_node: ComputeNetwork) -> None:
    ledger = async_node.ledger
    assert ledger is not None
    me = ledger.node_id
    other = Identity.generate().node_id
    async with PeerClient.local(url_of(async_node), async_node.data_dir) as client:
        balance = await client.request("GET", f"{API}/balance")
        assert balance["node_id"] == me and balance["balance"] == 100.0
        assert balance["units"]["balance"] == 100 * 10**6 and balance["decimals"] == 6
        sent = await client.request("POST", f"{API}/transfers", body={"to": other, "amount": 2.5})
        assert sent["kind"] == "transfer" and sent["balance"] == 97.5 and len(sent["event"]) == 64
        voucher = await client.request("POST", f"{API}/transfers", body={"to": "node-002", "amount": "1.5"})
        assert voucher["kind"] == "voucher" and voucher["balance"] == 96.0
        account = await client.request("GET", f"{API}/accounts/{other}")
        assert account["incoming"] == 2.5 and account["units"]["incoming"] == 2_500_000 and account["balance"] == 0
        mine = await client.request("GET", f"{API}/accounts/{me}")
        assert mine["balance"] == 96.0 and mine["sent"] == 2.5 and mine["vouchers"] == 1.5
        history = await client.request("GET", f"{API}/history", params={"limit": 2})
        assert [h["type"] for h in history["history"]] == ["voucher_issued", "transfer_out"]
        assert history["history"][0]["balance_after"] == 96.0

        before = ledger.store.last_offset()
        for body, code, fragment in [
            ({"to": other, "amount": 10_000}, "insufficient_credits", "insufficient"),
            ({"to": me, "amount": 1}, "credit_refused", "oneself"),
            ({"to": other, "amount": -1}, "credit_refused", "positive"),
            ({"to": other, "amount": "lots"}, "credit_refused", "not a number"),
            ({"to": other, "amount": 0.0000001}, "credit_refused", "decimal places"),
            ({"to": other}, "malformed_request", "amount"),
            ({"to": "", "amount": 1}, "malformed_request", "to"),
            ({"to": other, "amount": 1, "memo": "x"}, "malformed_request", "memo"),
        ]:
            err = await refused(client, "POST", f"{API}/transfers", body)
            assert (err.status, err.code) == (400, code), (body, err)
            assert fragment in err.message, (body, err.message)
        assert ledger.store.last_offset() == before
        err = await refused(client, "GET", f"{API}/accounts/{Identity.generate().node_id}")
        assert (err.status, err.code) == (404, "unknown_account")
        err = await refused(client, "GET", f"{API}/accounts/not-a-key")
        assert (err.status, err.code) == (400, "bad_account")
        err = await refused(client, "GET", f"{API}/history", params={"limit": "-1"})
        assert err.code == "bad_parameter"


async def test_token_required_off_loopback(async_node: ComputeNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that does not come from loopback needs the node's API token."""
    monkeypatch.setattr(auth, "is_loopback", lambda request: False)
    assert async_node.server is not None and async_node.server.token
    token_file = Path(async_node.data_dir) / "api.token"
    assert token_file.read_text().strip() == async_node.server.token
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url_of(async_node)}{API}/balance") as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
        async with session.get(f"{url_of(async_node)}{API}/balance", headers={TOKEN_HEADER: "wrong"}) as resp:
            assert resp.status == 403
        async with session.post(f"{url_of(async_node)}{API}/transfers",
                                data=orjson.dumps({"to": "x", "amount": 1})) as resp:
            assert resp.status == 401
    async with PeerClient(url_of(async_node), token=async_node.server.token) as client:
        assert (await client.request("GET", f"{API}/balance"))["balance"] == 100.0
