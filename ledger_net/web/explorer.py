"""The ledger explorer: the page at `/` (plain ES modules under `static/`, no build
step) and the public read routes it needs beyond the replication API.

The page reads only real ledger data: the summary (projections), the feed (events
with this node's verdict), account history rows (`credit_history`), an account's
own chain and a task's events. Live updates come over `/ws`. Read routes are
public, like the feed: everything they show is in the signed log anyway.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..ledger.identity import is_public_key
from ..ledger.store import StoredEvent
from ..ledger.wire import stored_to_wire
from ..network.ports import ExplorerPort
from ..network.protocol import API
from ..network.responses import ApiError, int_param, json_response
from ..projections.reputation import level_of
from ..projections.rows import ACCOUNT_COLUMNS, TaskRow
from ..projections.runner import ProjectionRunner
from ..projections.status import TaskStatus

STATIC_DIR = Path(__file__).parent / "static"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(js|css|html|svg)$")
_CONTENT_TYPES = {"js": "text/javascript", "css": "text/css", "html": "text/html", "svg": "image/svg+xml"}
MAX_TASKS_LISTED = 100  # newest tasks in the summary
MAX_HISTORY = 2000  # history rows per page
MAX_EVENTS = 500  # events per page of an account's chain or a task's history
MAX_TASK_SCAN = 20_000  # stored events a task-history query may look at
MAX_TASK_ID = 128


def _event_item(e: StoredEvent) -> dict[str, Any]:
    """A feed item (wire form + verdict) with its hash, and the envelope fields parsed once."""
    data = orjson.loads(e.raw)
    return {"offset": e.offset, "hash": e.hash, **stored_to_wire(e), "type": data.get("type"),
            "author": data.get("author"), "seq": data.get("seq"), "ts": data.get("ts")}


class Explorer:
    """Read handlers over one ComputeNetwork (resolved per request: the node may restart)."""

    def __init__(self, network: ExplorerPort) -> None:
        self.network = network
        self.started = time.time()

    # ----------------------------------------------------------------- helpers
    def _parts(self) -> tuple[Any, ProjectionRunner, Any]:
        net = self.network
        if net.ledger is None or net.runner is None or net.server is None or net.server.api is None:
            raise ApiError(503, "not_ready", "the node is starting or stopping")
        return net.ledger, net.runner, net.server

    async def _read(self, fn: Any, *args: Any) -> Any:
        _, _, server = self._parts()
        return await server.api.run_read(fn, *args)

    # ----------------------------------------------------------------- pages
    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache",
                                                                     "Content-Type": "text/html; charset=utf-8"})

    async def static(self, request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        match = _STATIC_NAME.match(name)
        path = STATIC_DIR / name
        if match is None or not path.is_file():
            raise ApiError(404, "not_found", f"no static file {name[:80]!r}")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache",
                                               "Content-Type": f"{_CONTENT_TYPES[match.group(1)]}; charset=utf-8"})

    # ----------------------------------------------------------------- summary
    async def summary(self, request: web.Request) -> web.Response:
        """Network status, supply, nodes (reputation, load, balance) and the newest tasks."""
        ledger, runner, server = self._parts()
        store = ledger.store
        count, last = await self._read(lambda: (store.count(), store.last_offset()))
        decimals = ledger.state.decimals
        scale = 10 ** decimals
        with runner.reading():  # projections fold on the writer thread: snapshot whole events
            node_rows = {k: runner.nodes.describe(k) for k in list(runner.nodes.nodes)}
            accounts = {k: v.copy() for k, v in runner.balances.accounts.items()}
            totals = runner.balances.totals()
            task_rows = sorted(((k, v.copy()) for k, v in runner.tasks.tasks.items()),
                               key=lambda kv: (-kv[1]["submitted_ts"], kv[0]))
            scores = {k: runner.reputation.score(k) for k in node_rows}
            projection_offset = runner.offset
        me = ledger.node_id
        live_load = self.network.node.get_current_load() if self.network.node is not None else None
        nodes = []
        for node_id, row in sorted(node_rows.items(), key=lambda kv: (kv[0] != me, kv[1]["name"], kv[0])):
            acct = accounts.get(node_id)
            load = live_load if node_id == me and live_load is not None else row["load"]
            peer = server.discovery.by_node(node_id)
            nodes.append({"node_id": node_id, "name": row["name"], "url": row["url"], "status": row["status"],
                          "node_type": row["node_type"], "is_self": node_id == me,
                          "reputation": scores[node_id] / 1_000_000, "level": level_of(scores[node_id]),
                          "load": load, "capabilities": row["capabilities"], "forked_at": row["forked_at"],
                          "events": row["events"], "balance": (acct["balance"] if acct else 0) / scale,
                          "escrow": (acct["escrow"] if acct else 0) / scale,
                          "connection": peer[0].status if peer else ("self" if node_id == me else None)})
        tasks = [self._task_view(task_id, row, scale) for task_id, row in task_rows[:MAX_TASKS_LISTED]]
        genesis = ledger.state.genesis
        supply = {"minted": totals["minted"] / scale, "balance": totals["balance"] / scale,
                  "escrow": totals["escrow"] / scale, "in_transit": totals["incoming"] / scale,
                  "vouchers": totals["vouchers"] / scale, "burnt": totals["burnt"] / scale}
        conserved = totals["minted"] == (totals["balance"] + totals["escrow"] + totals["incoming"]
                                         + totals["vouchers"] + totals["burnt"])
        return json_response({
            "node": {"node_id": me, "url": server.url, "net": ledger.net,
                     "network_name": genesis.body.get("name") if genesis is not None else None,
                     "events": count, "last_offset": last, "projection_offset": projection_offset,
                     "pending": len(ledger.pending), "forks": dict(ledger.state.frozen),
                     "peers": sum(1 for p in server.discovery.active() if p.last_ok),
                     "uptime_seconds": time.time() - self.started},
            "decimals": decimals, "supply": supply, "conserved": conserved,
            "nodes": nodes, "tasks": tasks, "tasks_total": len(task_rows)})

    @staticmethod
    def _task_view(task_id: str, row: TaskRow, scale: int) -> dict[str, Any]:
        total = row["chunks_total"]
        progress = 1.0 if row["status"] == TaskStatus.COMPLETED else (row["chunks_done"] / total if total else 0.0)
        return {"task_id": task_id, "owner": row["owner"], "task_type": row["task_type"], "status": row["status"],
                "progress": progress, "chunks_total": total, "chunks_done": row["chunks_done"],
                "chunks_failed": row["chunks_failed"], "escrow": row["escrow"] / scale, "paid": row["paid"] / scale,
                "refund": row["refund"] / scale, "reason": row["reason"], "submitted_ts": row["submitted_ts"],
                "finished_ts": row["finished_ts"], "submitted_hash": row["submitted_hash"]}

    # ----------------------------------------------------------------- accounts
    def _account_param(self, request: web.Request) -> str:
        account = request.match_info["account"]
        if not is_public_key(account) or account != account.lower():
            raise ApiError(400, "bad_account", f"{account[:80]!r} is not an account (a lower-case hex ed25519 "
                                               "public key)")
        return account

    def _account_view(self, ledger: Any, runner: ProjectionRunner, account: str) -> dict[str, Any]:
        """Balances, reputation and node row of an account (any key is an account: zeros
        until the ledger moves credits to it). Caller holds the runner's lock."""
        scale = 10 ** ledger.state.decimals
        acct = runner.balances.row_of(account)
        score = runner.reputation.score(account)
        node = runner.nodes.describe(account) if account in runner.nodes.nodes else None
        amounts: dict[str, float] = {k: acct[k] / scale for k in ACCOUNT_COLUMNS}
        return {**amounts, "reputation": score / 1_000_000, "level": level_of(score), "node": node,
                "is_self": account == ledger.node_id, "forked_at": ledger.state.frozen.get(account)}

    async def history(self, request: web.Request) -> web.Response:
        """The account's state and its credit history rows (newest `limit` before `before`,
        oldest first), each with the running balance: what the balance chart draws."""
        account = self._account_param(request)
        before = int_param(request, "before", 0, 0)
        limit = int_param(request, "limit", 500, 1, MAX_HISTORY)
        ledger, runner, _ = self._parts()
        with runner.reading():
            state = self._account_view(ledger, runner, account)
        ordered = await self._read(lambda: runner.account_history(account, before=before, limit=limit))
        scale = 10 ** ledger.state.decimals
        items = [{"offset": r["offset"], "part": r["part"], "event_hash": r["event_hash"], "kind": r["kind"],
                  "delta": r["delta"] / scale, "amount": r["amount"] / scale, "counterparty": r["counterparty"],
                  "task_id": r["task_id"], "reason": r["reason"], "ts": r["ts"],
                  "balance_after": r["balance_after"] / scale} for r in ordered]
        more = len(ordered) == limit
        return json_response({"account": account, "decimals": ledger.state.decimals, "state": state,
                              "history": items,
                              "next_before": ordered[0]["offset"] if more and ordered else None})

    async def account_events(self, request: web.Request) -> web.Response:
        """Events the account signed (its chain), newest first, with this node's verdict."""
        account = self._account_param(request)
        before = int_param(request, "before", 0, 0)
        limit = int_param(request, "limit", 50, 1, MAX_EVENTS)
        ledger, _, _ = self._parts()
        stored = await self._read(lambda: ledger.store.events_by_author(account, before=before, limit=limit))
        items = [_event_item(e) for e in stored]
        return json_response({"account": account, "events": items,
                              "next_before": items[-1]["offset"] if len(items) == limit else None})

    # ----------------------------------------------------------------- tasks
    async def task_events(self, request: web.Request) -> web.Response:
        """A task's whole history: every stored event whose body names it, oldest first,
        with this node's verdict, plus the task and its chunks from the projection."""
        task_id = request.match_info["task_id"]
        if not task_id or len(task_id) > MAX_TASK_ID:
            raise ApiError(400, "bad_parameter", f"a task id is 1 to {MAX_TASK_ID} characters")
        limit = int_param(request, "limit", MAX_EVENTS, 1, MAX_EVENTS)
        ledger, runner, _ = self._parts()
        scale = 10 ** ledger.state.decimals
        with runner.tasks.reading() as tasks:
            row = tasks.tasks.get(task_id)
            row = row.copy() if row is not None else None
            chunks = sorted((i, c.copy()) for i, c in tasks.chunks_of(task_id).items())
        if row is None:
            raise ApiError(404, "unknown_task", f"no task {task_id[:80]!r} on this node")
        start = await self._read(ledger.store.offset_of, row["submitted_hash"])
        stored = await self._read(lambda: ledger.store.events_about_task(task_id, start=start or 0, limit=limit,
                                                                          scan=MAX_TASK_SCAN))
        items = [_event_item(e) for e in stored]
        for item in items:
            item["body"] = orjson.loads(item["raw"])["body"]
        chunk_views = [{"chunk": i, "status": c["status"], "worker": c["worker"],
                        "price": c["price"] / scale if c["price"] is not None else None, "attempts": c["attempts"],
                        "payment": c["payment"] / scale, "error": c["error"]} for i, c in chunks]
        return json_response({"task": self._task_view(task_id, row, scale), "chunks": chunk_views,
                              "events": items})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/static/{name}", self.static),
            web.get(f"{API}/explorer/summary", self.summary),
            web.get(f"{API}/accounts/{{account}}/history", self.history),
            web.get(f"{API}/accounts/{{account}}/events", self.account_events),
            web.get(f"{API}/tasks/{{task_id}}/events", self.task_events),
        ]


def explorer_routes(network: ExplorerPort) -> list[web.RouteDef]:
    """The explorer page and its read routes, for `ComputeNetwork`'s HTTP app."""
    return Explorer(network).routes()
