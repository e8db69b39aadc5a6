"""Read-only, public HTTP routes for checkpoints, their cosignatures and proofs.

Everything here is something a light client verifies itself (`ledger_net.light`), so no
token is asked: a wrong answer cannot hurt a client that checks. Proofs go out in version 2
(`ledger.proof_codec`: base64url). Each route reads through the node's `CheckpointService` on
a worker thread; a bad parameter is a 400 and an unknown checkpoint or event a 404, both as
the API's JSON error; an account without an entry gets the proof of its absence.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..core.checkpoints import CheckpointService
from ..errors import NodeError
from ..ledger.proof_codec import compact
from .protocol import API
from .responses import ApiError, json_response

_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch
_REF = re.compile(r"[0-9a-f]{4,64}|latest").fullmatch


def _key(value: str, what: str) -> str:
    if _HEX64(value) is None:
        raise ApiError(400, "bad_parameter", f"{what} is 64 lower-case hex characters")
    return value


def _ref(value: str | None, what: str) -> str | None:
    if value is None or value == "latest":
        return None
    if _REF(value) is None:
        raise ApiError(400, "bad_parameter", f"{what} is a checkpoint hash, a prefix of 4+ hex characters, or 'latest'")
    return value


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except NodeError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


class _Routes:
    """The handlers, each reading through the service on a worker thread."""

    def __init__(self, service: CheckpointService) -> None:
        self.service = service

    async def list_checkpoints(self, request: web.Request) -> Any:
        signer = request.query.get("signer")
        if signer is not None:
            _key(signer, "signer")
        raw = request.query.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ApiError(400, "bad_parameter", "limit is an integer 1..1000")
        return {"checkpoints": await _run(lambda: [self.service.describe(e)
                                                    for e in self.service.checkpoints(signer, int(raw))])}

    async def checkpoint(self, request: web.Request) -> Any:
        ref = _ref(request.match_info["ref"], "ref")

        def read() -> Any:
            event = self.service.resolve(ref)
            return {**self.service.describe(event), "checkpoint": self.service.cosigned(event)}
        return await _run(read)

    async def frontier(self, request: web.Request) -> Any:
        ref = _ref(request.match_info["ref"], "ref")

        def read() -> Any:
            event = self.service.resolve(ref)
            return {"hash": event.hash, "frontier_root": event.body["frontier_root"],
                    "frontier": self.service.held_frontier(event)}
        return await _run(read)

    async def cosignatures(self, request: web.Request) -> Any:
        ref = _ref(request.match_info["ref"], "ref")

        def read() -> Any:
            event = self.service.resolve(ref)
            return {"hash": event.hash,
                    "cosignatures": [c.to_json() for c in self.service.cosignature_events(event.hash)]}
        return await _run(read)

    async def balance(self, request: web.Request) -> Any:
        account = _key(request.match_info["account"], "account")
        return compact(await _run(self.service.balance_proof, account, _ref(request.query.get("at"), "at")))

    async def event(self, request: web.Request) -> Any:
        hash_ = _key(request.match_info["hash"], "hash")
        return compact(await _run(self.service.event_proof, hash_, _ref(request.query.get("at"), "at")))

    async def consistency(self, request: web.Request) -> Any:
        author = _key(request.match_info["author"], "author")
        old, new = request.query.get("old"), request.query.get("new")
        if old is None or new is None:
            raise ApiError(400, "bad_parameter", "give the two checkpoints as ?old=…&new=…")
        return compact(await _run(self.service.consistency, author, _ref(old, "old"), _ref(new, "new")))


def _json(fn: Callable[[web.Request], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return json_response(await fn(request))
    return handler


def proof_routes(service: CheckpointService) -> list[web.RouteDef]:
    """GET routes of checkpoints, cosignatures and proofs over `service`."""
    r = _Routes(service)
    return [web.get(f"{API}/checkpoints", _json(r.list_checkpoints)),
            web.get(f"{API}/checkpoints/{{ref}}", _json(r.checkpoint)),
            web.get(f"{API}/checkpoints/{{ref}}/frontier", _json(r.frontier)),
            web.get(f"{API}/checkpoints/{{ref}}/cosignatures", _json(r.cosignatures)),
            web.get(f"{API}/proofs/balance/{{account}}", _json(r.balance)),
            web.get(f"{API}/proofs/event/{{hash}}", _json(r.event)),
            web.get(f"{API}/proofs/consistency/{{author}}", _json(r.consistency))]
