"""The blob routes: a blob's bytes (whole, or a byte range) and a ``b3t`` blob's leaves list.

A fetcher that wants part of a big operand asks for its leaves (``/pieces``: 32 bytes a
1 MiB piece), checks them against the name (``blob_names.check_pieces``), then fetches byte
ranges and checks each piece as it lands (``blob_names.check_piece``). Files go out by
sendfile (aiohttp's ``FileResponse`` answers ``Range`` itself); small blobs are database
rows, sliced here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..blob_names import is_b3t_name, is_blob_name
from ..ledger.store import Store
from .responses import ApiError

RunRead = Callable[..., Awaitable[Any]]
_LEAVES_KEPT = 64  # leaves lists remembered (32 bytes a MiB: 64 lists of 32 MiB blobs are 64 KiB)
OCTETS = "application/octet-stream"


def blob_name_param(request: web.Request) -> str:
    name = request.match_info["hash"]
    if not is_blob_name(name):
        raise ApiError(400, "bad_hash", f"{name[:80]!r} is not a blob name (64 lower-case hex SHA-256, "
                                        "or b3t: and 64 lower-case hex)")
    return name


class BlobRoutes:
    """GET ``/blobs/{name}`` (with ``Range``) and ``/blobs/{name}/pieces`` over one store."""

    def __init__(self, store: Store, run_read: RunRead) -> None:
        self.store, self.run_read = store, run_read
        self._leaves: OrderedDict[str, bytes] = OrderedDict()

    def routes(self, api: str) -> list[web.RouteDef]:
        return [web.get(f"{api}/blobs/{{hash}}", self.get_blob),
                web.get(f"{api}/blobs/{{hash}}/pieces", self.get_pieces)]

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        """A content-addressed blob (a large operand or result named in an event), whole or a
        ``Range: bytes=a-b`` of it (206)."""
        name = blob_name_param(request)
        path = self.store.blob_path(name)
        if path is not None:  # a big blob's file goes out by sendfile, never through Python memory
            return web.FileResponse(path, headers={"Content-Type": OCTETS, "Accept-Ranges": "bytes"})
        data = await self.run_read(self.store.get_blob, name)
        if data is None:
            raise ApiError(404, "unknown_blob", f"no blob {name} on this node")
        if "Range" not in request.headers:
            return web.Response(body=data, content_type=OCTETS, headers={"Accept-Ranges": "bytes"})
        start, end = _byte_range(request, len(data))
        return web.Response(status=206, body=data[start:end], content_type=OCTETS,
                            headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}",
                                     "Accept-Ranges": "bytes"})

    async def get_pieces(self, request: web.Request) -> web.Response:
        """The leaves list of a ``b3t`` blob: BLAKE3 of each 1 MiB piece, 32 bytes each, in order."""
        name = blob_name_param(request)
        if not is_b3t_name(name):
            raise ApiError(400, "no_pieces", f"blob {name[:16]}… has a SHA-256 name, which has no pieces; "
                                             "fetch it whole")
        leaves = self._leaves.get(name)
        if leaves is None:
            leaves = await self.run_read(self.store.blob_leaves, name)  # the store's checked sidecar
            if leaves is None:
                raise ApiError(404, "unknown_blob", f"no blob {name} on this node")
            self._leaves[name] = leaves
            while len(self._leaves) > _LEAVES_KEPT:
                self._leaves.popitem(last=False)
        else:
            self._leaves.move_to_end(name)
        return web.Response(body=leaves, content_type=OCTETS)


def _byte_range(request: web.Request, size: int) -> tuple[int, int]:
    """[start, end) of a single ``Range: bytes=`` request over ``size`` bytes; 416 when it
    cannot be met (as aiohttp answers for files)."""
    unsatisfiable = ApiError(416, "bad_range", f"range {request.headers.get('Range', '')[:80]!r} does not fit "
                                               f"a blob of {size} bytes", headers={"Content-Range": f"bytes */{size}"})
    try:
        rng = request.http_range
    except ValueError:
        raise unsatisfiable from None
    start, stop, _ = rng.indices(size)
    if rng.start is not None and rng.start >= size or start >= stop:
        raise unsatisfiable
    return start, stop
