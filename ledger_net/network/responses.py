"""The JSON side of the node's HTTP: responses, the `ApiError` every refusal is, the
middleware that turns any failure into `{"error": {"code", "message"}}`, and query parameters.

Bodies are encoded with orjson because on loopback encoding, not the socket, is what limits a feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ..ledger.encoding import INT_MAX

log = logging.getLogger("ledger_net.network.protocol")  # the name its "handler … failed" lines always had

CLIENT_MAX_SIZE_KEY: web.AppKey[int] = web.AppKey("client_max_size")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


class ApiError(Exception):
    """A refused request: HTTP status, a stable machine code and a message naming the cause."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        response = json_response({"error": {"code": self.code, "message": self.message}}, self.status)
        response.headers.update(self.headers)
        return response


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 429: "too_many_requests"}


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"}}`; the node keeps serving."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            message = f"request body is larger than this node accepts ({request.app[CLIENT_MAX_SIZE_KEY]} bytes)"
        return json_response({"error": {"code": code, "message": message}}, exc.status)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug must not take the node down
        log.exception("handler %s %s failed", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)



def int_param(request: web.Request, name: str, default: int, lo: int, hi: int | None = INT_MAX) -> int:
    """An integer query parameter within [lo, hi] (hi defaults to the largest offset or seq a
    store holds, 2^63-1), else a 400 naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"query parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if len(raw) > 40 or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ApiError(400, "bad_parameter", f"query parameter {name!r} must be {bound}, got {value}")
    return value
