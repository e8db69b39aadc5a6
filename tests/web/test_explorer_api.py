"""The explorer's read routes on a live node: the page and its files (nothing else from
disk), a task's history holds exactly its own events, account history pages back by
offset with the running balance, and bad input is a 4xx JSON error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork

pytestmark = pytest.mark.timeout(120)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, object]:
    async with session.get(url) as answer:
        kind = answer.headers.get("Content-Type", "")
        body = await answer.json() if kind.startswith("application/json") else await answer.text()
        return answer.status, kind, body


async def test_explorer_routes(tmp_path: Path) -> None:
    net = ComputeNetwork(host="127.0.0.1", port=0, data_dir=tmp_path / "n")
    await net.start()
    try:
        me = net.ledger.node_id  # type: ignore[union-attr]
        ids = []
        for _ in range(2):
            task = Task.create_range_reduce(owner_id=me, start=1, end=100, operation="sum",
                                            requirements={"timeout_seconds": 30}, config={"max_price": 0.1})
            ids.append(await net.submit_task(task.to_dict()))
        for _ in range(300):
            statuses = [(await net.get_task_status(t))["status"] for t in ids]
            if all(status == "completed" for status in statuses):
                break
            await asyncio.sleep(0.1)
        url = net.server.url  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as s:
            status, kind, page = await get(s, url + "/")
            assert status == 200 and kind.startswith("text/html") and "/static/app.js" in str(page)
            for name, prefix in (("app.js", "text/javascript"), ("chart.js", "text/javascript"),
                                 ("style.css", "text/css")):
                status, kind, _ = await get(s, f"{url}/static/{name}")
                assert status == 200 and kind.startswith(prefix)
            for name in ("..%2Fexplorer.py", "%2E%2E%2F%2E%2E%2Fmain.py", "explorer.py", "nope.js"):
                status, _, body = await get(s, f"{url}/static/{name}")
                assert status == 404 and body["error"]["code"] == "not_found"  # type: ignore[index]

            for task_id in ids:
                status, _, body = await get(s, f"{url}/api/v1/tasks/{task_id}/events")
                assert status == 200
                events = body["events"]  # type: ignore[index]
                assert {e["body"]["task_id"] for e in events} == {task_id}
                assert [e["type"] for e in events][0] == "task.submitted" and events[-1]["type"] == "task.completed"
                assert [e["offset"] for e in events] == sorted(e["offset"] for e in events)
                assert all(e["valid"] for e in events) and body["task"]["status"] == "completed"  # type: ignore[index]
            status, _, body = await get(s, f"{url}/api/v1/tasks/no-such-task/events")
            assert status == 404 and body["error"]["code"] == "unknown_task"  # type: ignore[index]

            status, _, full = await get(s, f"{url}/api/v1/accounts/{me}/history")
            rows = full["history"]  # type: ignore[index]
            assert rows[0]["kind"] == "minted" and rows[-1]["balance_after"] == full["state"]["balance"] == 100  # type: ignore[index]
            running = 0.0
            for row in rows:
                running += row["delta"]
                assert abs(running - row["balance_after"]) < 1e-9
            status, _, newest = await get(s, f"{url}/api/v1/accounts/{me}/history?limit=2")
            assert newest["history"] == rows[-2:] and newest["next_before"] == rows[-2]["offset"]  # type: ignore[index]
            before = newest["next_before"]  # type: ignore[index]
            status, _, older = await get(s, f"{url}/api/v1/accounts/{me}/history?limit=2&before={before}")
            assert older["history"] == [r for r in rows if r["offset"] < newest["next_before"]][-2:]  # type: ignore[index]

            status, _, evs = await get(s, f"{url}/api/v1/accounts/{me}/events?limit=3")
            seqs = [e["seq"] for e in evs["events"]]  # type: ignore[index]
            assert len(seqs) == 3 and seqs == sorted(seqs, reverse=True)
            for bad in ("nothex", "AB" * 32):
                status, _, body = await get(s, f"{url}/api/v1/accounts/{bad}/history")
                assert status == 400 and body["error"]["code"] == "bad_account"  # type: ignore[index]
            status, _, body = await get(s, f"{url}/api/v1/accounts/{me}/history?limit=0")
            assert status == 400 and body["error"]["code"] == "bad_parameter"  # type: ignore[index]

            status, _, summary = await get(s, f"{url}/api/v1/explorer/summary")
            assert summary["tasks_total"] == 2 and summary["conserved"] is True  # type: ignore[index]
            assert summary["nodes"][0]["node_id"] == me and summary["nodes"][0]["balance"] == 100  # type: ignore[index]
    finally:
        await net.stop()
