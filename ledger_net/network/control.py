"""The control API of a `ComputeNetwork` node: what its owner asks it to do.

Submit, watch and cancel tasks, read balances and history, transfer credits.
Every route is `@control` (see `auth.require_control`: the node's API token
always for POSTs, for GETs unless from loopback; Host, Origin and Content-Type
checked against forged browser requests), answers JSON, and refuses bad input with
a 4xx `{"error": {"code", "message"}}` naming the cause before anything is
appended: the checks run first, and the ledger itself refuses an event that breaks
a rule (nothing is stored). Every route answers 503 `not_ready` exactly when
`/readyz` does (`ComputeNetwork.not_ready`).

Reads come from the projections (`runner.tasks`, `runner.balances`, …), writes go
through the seed API (`submit_task`, `Credits.transfer_credits`), so the HTTP
side adds no rules of its own.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
from aiohttp import web

from ..core.money import to_credits
from ..errors import CreditError, InsufficientCredits, LedgerNetError, NodeError, TaskError
from ..ledger.identity import is_public_key
from ..projections.rows import ACCOUNT_COLUMNS, TaskRow
from ..projections.runner import ProjectionRunner
from ..projections.status import ROW_STATUSES, TaskStatus
from .auth import control
from .ports import ControlPort
from .protocol import API
from .responses import ApiError, int_param, json_response

MAX_LIST = 1000
MAX_HISTORY = 10_000


def jsonable(value: Any) -> Any:
    """A task result as plain JSON: numpy arrays and scalars as lists and numbers, bytes
    as `{"$bytes": base64}`, non-finite floats as strings (JSON has no NaN)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    return str(value)


class ControlAPI:
    """The handlers, bound to one (started) network node."""

    def __init__(self, network: ControlPort) -> None:
        self.network = network

    # ------------------------------------------------------------ helpers
    def _books(self) -> tuple[Any, ProjectionRunner]:
        reason = self.network.not_ready()
        ledger, runner = self.network.ledger, self.network.runner
        if reason is not None or ledger is None or runner is None:
            raise ApiError(503, "not_ready", reason or "the node is starting or stopping; try again")
        return ledger, runner

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            raise ApiError(400, "malformed_request", "request body is empty; send a JSON object")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "malformed_json", f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "malformed_request", f"request body must be a JSON object, not {type(body).__name__}")
        return body

    async def _write(self, fn: Any, *args: Any) -> Any:
        """Run a ledger write serialised with ingests (the node's writer thread)."""
        server = self.network.server
        if server is None:
            raise ApiError(503, "not_ready", "the node is not serving")
        return await server.run_write(fn, *args)

    def _money(self, units: int) -> float:
        ledger, _ = self._books()
        return to_credits(units, ledger.state.decimals)

    def _task_row(self, task_id: str) -> TaskRow:
        _, runner = self._books()
        row = runner.tasks.tasks.get(task_id)
        if row is None:
            raise ApiError(404, "unknown_task", f"no task {task_id[:128]!r} on this node's ledger")
        return row

    # ------------------------------------------------------------ tasks
    async def post_task(self, request: web.Request) -> web.Response:
        """Escrow and publish a task dict (`Task.to_dict()` or the seed's hand-written form)."""
        self._books()
        body = await self._json_body(request)
        try:
            task_id = await self.network.submit_task(body)
        except CreditError as exc:
            code, status = ("insufficient_credits", 402) if isinstance(exc, InsufficientCredits) else (
                "credit_refused", 400)
            raise ApiError(status, code, str(exc)) from None
        except (TaskError, ValueError, TypeError) as exc:  # a malformed task dict is the client's mistake
            raise ApiError(400, "invalid_task", str(exc)[:500]) from None
        except NodeError as exc:
            raise ApiError(503, "not_ready", str(exc)) from None
        row = self._task_row(task_id)
        return json_response({"task_id": task_id, "status": row["status"], "chunks": row["chunks_total"],
                              "escrow": self._money(row["escrow"])}, 201)

    async def get_task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        self._task_row(task_id)
        try:
            status = await self.network.get_task_status(task_id)
        except TaskError as exc:
            raise ApiError(404, "unknown_task", str(exc)) from None
        return json_response(status)

    async def get_result(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        row = self._task_row(task_id)
        if row["status"] != TaskStatus.COMPLETED:
            reason = f" ({row['reason']})" if row["reason"] else ""
            raise ApiError(409, "not_completed", f"task {task_id} has no result: it is {row['status']}{reason}")
        try:
            result = await self.network.get_task_result(task_id)
        except TaskError as exc:
            raise ApiError(409, "no_result", str(exc)) from None
        return json_response({"task_id": task_id, "status": TaskStatus.COMPLETED.value, "result": jsonable(result)})

    async def post_cancel(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        row = self._task_row(task_id)
        ledger, _ = self._books()
        if row["owner"] != ledger.node_id:
            raise ApiError(403, "not_owner", f"task {task_id} belongs to node {row['owner'][:16]}…; only its "
                                             "owner may cancel it")
        try:
            cancelled = await self.network.cancel_task(task_id)
        except TaskError as exc:
            raise ApiError(400, "cancel_refused", str(exc)) from None
        row = self._task_row(task_id)
        return json_response({"task_id": task_id, "cancelled": bool(cancelled), "status": row["status"],
                              "refund": self._money(row["refund"])})

    async def list_tasks(self, request: web.Request) -> web.Response:
        """Tasks of the ledger, newest first; `status`, `owner` (`me` for this node) filter."""
        ledger, runner = self._books()
        status = request.query.get("status")
        if status is not None and status not in ROW_STATUSES:
            raise ApiError(400, "bad_parameter", f"status must be one of {', '.join(ROW_STATUSES)}, got "
                                                 f"{status[:40]!r}")
        owner = request.query.get("owner")
        if owner == "me":
            owner = ledger.node_id
        if owner is not None and not is_public_key(owner):
            raise ApiError(400, "bad_parameter", "owner must be a node id (hex public key) or 'me'")
        limit = int_param(request, "limit", 100, 1, MAX_LIST)
        tasks_proj = runner.tasks
        rows = [(tid, row) for tid, row in list(tasks_proj.tasks.items())
                if (status is None or row["status"] == status) and (owner is None or row["owner"] == owner)]
        rows.sort(key=lambda item: (item[1]["submitted_ts"], item[0]), reverse=True)
        out = [{"task_id": tid, "status": row["status"], "task_type": row["task_type"], "owner_id": row["owner"],
                "progress": tasks_proj.progress(tid), "chunks_total": row["chunks_total"],
                "chunks_done": row["chunks_done"], "escrow": self._money(row["escrow"]),
                "paid": self._money(row["paid"]), "submitted_at": row["submitted_ts"] / 1000.0,
                "finished_at": row["finished_ts"] / 1000.0 if row["finished_ts"] else None}
               for tid, row in rows[:limit]]
        return json_response({"tasks": out, "total": len(rows)})

    # ------------------------------------------------------------ money
    def _account(self, node_id: str) -> dict[str, Any]:
        ledger, runner = self._books()
        row = runner.balances.accounts.get(node_id)
        if row is None:
            raise ApiError(404, "unknown_account", f"no account {node_id[:64]!r} in the ledger")
        decimals = ledger.state.decimals
        node = runner.nodes.nodes.get(node_id)
        return {"node_id": node_id, "name": node["name"] if node else None, "decimals": decimals,
                **{k: to_credits(row[k], decimals) for k in ACCOUNT_COLUMNS},
                "units": dict(row), "reputation": runner.reputation.score(node_id) / 1_000_000,
                "forked_at": ledger.state.frozen.get(node_id)}

    async def get_balance(self, request: web.Request) -> web.Response:
        """This node's account: spendable balance, escrow, incoming, earnings and spending."""
        ledger, runner = self._books()
        credits = self.network.credits
        assert credits is not None
        metrics = await self._write(credits.get_credit_metrics)  # it flushes the history projection
        row = runner.balances.accounts.get(ledger.node_id)
        metrics["units"] = dict(row) if row else {}
        metrics["decimals"] = ledger.state.decimals
        return json_response(metrics)

    async def get_account(self, request: web.Request) -> web.Response:
        node_id = request.match_info["node_id"]
        if not is_public_key(node_id):
            raise ApiError(400, "bad_account", f"{node_id[:80]!r} is not a node id (hex ed25519 public key)")
        return json_response(self._account(node_id))

    async def post_transfer(self, request: web.Request) -> web.Response:
        """Send credits to a node id (a transfer) or a name (a voucher; see docs/ledger.md)."""
        self._books()
        body = await self._json_body(request)
        unknown = sorted(set(body) - {"to", "amount"})
        if unknown:
            raise ApiError(400, "malformed_request", f"unknown field(s) {', '.join(unknown)}; send "
                                                     '{"to": <node id or name>, "amount": <credits>}')
        to, amount = body.get("to"), body.get("amount")
        if not isinstance(to, str) or not to:
            raise ApiError(400, "malformed_request", '"to" must be a node id or a name')
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
            raise ApiError(400, "malformed_request", '"amount" must be a number of credits')
        credits = self.network.credits
        assert credits is not None

        def work() -> tuple[str, int, float]:
            # the event itself, not ledger.head(): concurrent appends share commits (run_append)
            event = credits.send_credits(to, amount)
            return event.hash, event.seq, credits.get_balance()

        server = self.network.server
        if server is None:
            raise ApiError(503, "not_ready", "the node is not serving")
        try:
            event_hash, seq, balance = await server.run_append(work)
        except CreditError as exc:
            code = "insufficient_credits" if isinstance(exc, InsufficientCredits) else "credit_refused"
            raise ApiError(400, code, str(exc)) from None
        return json_response({"ok": True, "to": to, "amount": amount, "event": event_hash, "seq": seq,
                              "kind": "transfer" if is_public_key(to) else "voucher", "balance": balance}, 201)

    async def get_history(self, request: web.Request) -> web.Response:
        self._books()
        limit = int_param(request, "limit", 100, 0, MAX_HISTORY)
        credits = self.network.credits
        assert credits is not None
        try:
            rows = await self._write(credits.get_transaction_history, limit)
        except LedgerNetError as exc:
            raise ApiError(400, "bad_parameter", str(exc)) from None
        return json_response({"node_id": credits.node_id, "history": [r.to_dict() for r in rows]})

    # ------------------------------------------------------------ table
    def routes(self) -> list[web.RouteDef]:
        c = control
        return [
            web.post(f"{API}/tasks", c(self.post_task)),
            web.get(f"{API}/tasks", c(self.list_tasks)),
            web.get(f"{API}/tasks/{{task_id}}", c(self.get_task)),
            web.get(f"{API}/tasks/{{task_id}}/result", c(self.get_result)),
            web.post(f"{API}/tasks/{{task_id}}/cancel", c(self.post_cancel)),
            web.get(f"{API}/balance", c(self.get_balance)),
            web.get(f"{API}/accounts/{{node_id}}", c(self.get_account)),
            web.post(f"{API}/transfers", c(self.post_transfer)),
            web.get(f"{API}/history", c(self.get_history)),
        ]


def control_routes(network: ControlPort) -> list[web.RouteDef]:
    """The control routes a `ComputeNetwork` (any `ControlPort`) serves beside the replication API."""
    return ControlAPI(network).routes()
