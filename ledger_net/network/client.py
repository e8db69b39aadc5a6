"""An aiohttp client for one peer's HTTP API.

Every failure becomes a `NetworkError` naming the peer and the cause (unreachable,
timed out, refused with the peer's error code), so the synchronizer can back off
without knowing aiohttp: `PeerRefused` when the peer answered with an HTTP error,
`PeerUnavailable` when it did not answer usefully (the HTTP API maps it to 502).
Responses are decoded with orjson and their size is bounded (`max_response`), so a
hostile peer cannot make us buffer without limit.
Redirects are never followed (a peer cannot bounce us to an address we would not
contact), and `GuardedResolver` keeps host names from resolving to link-local or
metadata addresses.

A local client of the control API (scripts, the CLI, bench) sends the node's API
token: `PeerClient.local(url, data_dir)` reads it from `DATA_DIR/api.token`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import NetworkError, PeerUnavailable
from .auth import TOKEN_HEADER, read_token
from .discovery import address_refused
from .protocol import API

DEFAULT_TIMEOUT = 15.0
MAX_RESPONSE = 64 << 20  # bytes of one JSON answer
MAX_LINE = 2 << 20  # bytes of one NDJSON line


BLOB_READ_BUFFER = 4 << 20
_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,15})-([0-9]{1,15})/([0-9]{1,15})").fullmatch


class PeerRefused(NetworkError):
    """The peer answered with an HTTP error (its `{"error": {...}}` is in `code`/`message`)."""

    def __init__(self, url: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{url}: HTTP {status} {code}: {message}")
        self.url = url
        self.status = status
        self.code = code
        self.message = message


class GuardedResolver(AbstractResolver):
    """The default resolver, minus the addresses `address_refused` names (link-local,
    metadata): a peer's host name that resolves only to those is unreachable, so DNS
    cannot point this node's requests at a metadata service."""

    def __init__(self) -> None:
        from aiohttp.resolver import DefaultResolver

        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if address_refused(r["host"]) is None]
        if not kept:
            raise OSError(f"{host} resolves only to addresses this node does not contact")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(limit: int = 64, allow_link_local: bool = False, limit_per_host: int = 0,
                    keepalive: float = 15.0) -> aiohttp.ClientSession:
    """A client session for talking to peers (the guarded resolver unless link-local is allowed).
    ``limit_per_host`` (0: none) keeps one peer from holding every connection of the pool;
    ``keepalive``: seconds an idle connection is kept for reuse (below the peer's own idle
    timeout, so a request is not sent on a connection the peer is closing)."""
    resolver = None if allow_link_local else GuardedResolver()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host,
                                                                keepalive_timeout=keepalive, resolver=resolver))


class PeerClient:
    """Talks to one peer. Share one `aiohttp.ClientSession` among the clients of a node."""

    def __init__(self, url: str, session: aiohttp.ClientSession | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 token: str | None = None, max_response: int = MAX_RESPONSE) -> None:
        self.url = url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))
        self.token = token
        self.max_response = max_response

    @classmethod
    def local(cls, url: str, data_dir: str | os.PathLike[str] | None, *, token: str | None = None,
              **options: Any) -> PeerClient:
        """A client of a node whose data dir is at hand: it sends `token`, else the one in
        `data_dir/api.token` (state-changing control routes always need it)."""
        return cls(url, token=token or read_token(data_dir), **options)

    async def __aenter__(self) -> PeerClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # ------------------------------------------------------------------ core
    def _headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.token} if self.token else {}

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, allow_404: bool = False) -> Any:
        """One JSON request; raises NetworkError / PeerRefused; None for an allowed 404."""
        url = f"{self.url}{path}"
        data = orjson.dumps(body) if body is not None else None
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(method, url, params=params, data=data, headers=headers,
                                            timeout=self.timeout, allow_redirects=False) as resp:
                if resp.content_length is not None and resp.content_length > self.max_response:
                    raise PeerUnavailable(f"{url}: answer of {resp.content_length} bytes exceeds {self.max_response}")
                if 300 <= resp.status < 400:
                    raise PeerUnavailable(f"{url}: answered a redirect ({resp.status}); peers' redirects are not "
                                       "followed")
                raw = await _read_bounded(resp, self.max_response, url)
                if resp.status == 404 and allow_404:
                    return None
                if resp.status >= 400:
                    code, message = _error_of(raw, resp.reason or "")
                    raise PeerRefused(self.url, resp.status, code, message)
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PeerUnavailable(f"{self.url} did not answer {method} {path} within {self.timeout.total}s") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise PeerUnavailable(f"{url}: answer is not JSON") from None

    # ------------------------------------------------------------------ API
    async def info(self) -> dict[str, Any]:
        return _expect_dict(await self.request("GET", f"{API}/info"), self.url, "info")

    async def heads(self) -> dict[str, Any]:
        return _expect_dict(await self.request("GET", f"{API}/heads"), self.url, "heads")

    async def event(self, hash_: str) -> dict[str, Any] | None:
        """The wire form of one event (void forker events included), or None if unknown."""
        answer = await self.request("GET", f"{API}/events/{hash_}", allow_404=True)
        if answer is None:
            return None
        return _expect_dict(answer, self.url, "event").get("event")

    async def chain(self, author: str, from_seq: int = 1, limit: int = 500) -> list[dict[str, Any]]:
        answer = await self.request("GET", f"{API}/chains/{author}", params={"from_seq": from_seq, "limit": limit})
        return _expect_list(_expect_dict(answer, self.url, "chain").get("events"), self.url, "chain")

    async def feed(self, after: int = 0, limit: int = 500) -> dict[str, Any]:
        """One feed page: `{"events": [{offset, raw, sig, valid, reason}], "next", "last_offset"}`."""
        answer = _expect_dict(await self.request("GET", f"{API}/feed", params={"after": after, "limit": limit}),
                              self.url, "feed")
        _expect_list(answer.get("events"), self.url, "feed")
        return answer

    async def blob_into(self, hash_: str, write: Callable[[bytes], Any], limit: int = 1 << 30) -> bool:
        """Stream a blob's bytes into ``write`` as they arrive (False if the peer lacks it); the
        caller hashes them as they come and checks the hash at the end."""
        url = f"{self.url}{API}/blobs/{hash_}"
        try:
            # A big read buffer: a 32 MiB operand arrives in a few hundred wake-ups of the loop,
            # not thousands (the default 64 KiB buffer pauses and resumes the socket per 128 KiB).
            async with self.session.get(url, headers=self._headers(), timeout=self.timeout,
                                        allow_redirects=False, read_bufsize=BLOB_READ_BUFFER) as resp:
                if resp.status == 404:
                    return False
                if resp.status >= 400:
                    raw = await _read_bounded(resp, self.max_response, url)
                    code, message = _error_of(raw, resp.reason or "")
                    raise PeerRefused(self.url, resp.status, code, message)
                size = 0
                async for piece in resp.content.iter_chunked(1 << 20):
                    size += len(piece)
                    if size > limit:
                        raise PeerUnavailable(f"{url}: answer exceeds {limit} bytes")
                    write(piece)
                return True
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PeerUnavailable(f"{self.url} did not send blob {hash_[:16]}… within {self.timeout.total}s") from None

    async def blob_leaves(self, name: str, limit: int = 1 << 20) -> bytes | None:
        """A ``b3t`` blob's leaves list (``GET /blobs/{name}/pieces``: 32 bytes a 1 MiB piece),
        unchecked: the caller checks it against the name. None when the peer lacks the blob or
        cannot list its pieces (a peer before ``b3t`` names)."""
        url = f"{self.url}{API}/blobs/{name}/pieces"
        try:
            async with self.session.get(url, headers=self._headers(), timeout=self.timeout,
                                        allow_redirects=False) as resp:
                raw = await _read_bounded(resp, limit, url)
                if resp.status in (400, 404, 405):
                    return None
                if resp.status >= 400:
                    code, message = _error_of(raw, resp.reason or "")
                    raise PeerRefused(self.url, resp.status, code, message)
                return raw
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PeerUnavailable(f"{self.url} did not send the pieces of {name[:20]}… in time") from None

    async def blob_range_into(self, name: str, start: int, end: int, begin: Callable[[int], Any],
                              write: Callable[[bytes], Any]) -> bool:
        """Stream bytes [start, end) of a blob into ``write`` (the peer cuts ``end`` to the blob's
        size). ``begin`` gets the blob's whole size, as the answer's ``Content-Range`` states it,
        before any byte. False when the peer lacks the blob or does not answer ranges."""
        url = f"{self.url}{API}/blobs/{name}"
        headers = {**self._headers(), "Range": f"bytes={start}-{end - 1}"}
        try:
            async with self.session.get(url, headers=headers, timeout=self.timeout, allow_redirects=False,
                                        read_bufsize=BLOB_READ_BUFFER) as resp:
                if resp.status in (404, 416) or resp.status < 400 and resp.status != 206:
                    return False
                if resp.status >= 400:
                    raw = await _read_bounded(resp, self.max_response, url)
                    code, message = _error_of(raw, resp.reason or "")
                    raise PeerRefused(self.url, resp.status, code, message)
                span = _CONTENT_RANGE(resp.headers.get("Content-Range", ""))
                # The answer must be the range asked for, cut at most to the blob's end: a peer
                # cannot make this node take more bytes than it asked for.
                if span is None or int(span[1]) != start or not start <= int(span[2]) < min(end, int(span[3])):
                    raise PeerUnavailable(f"{url}: a range answer with Content-Range "
                                          f"{resp.headers.get('Content-Range', '')[:80]!r}")
                begin(int(span[3]))
                expected, got = int(span[2]) + 1 - start, 0
                async for piece in resp.content.iter_chunked(1 << 20):
                    got += len(piece)
                    if got > expected:
                        raise PeerUnavailable(f"{url}: the range answer exceeds its {expected} bytes")
                    write(piece)
                if got != expected:
                    raise PeerUnavailable(f"{url}: the range answer ended after {got} of {expected} bytes")
                return True
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PeerUnavailable(f"{self.url} did not send bytes of blob {name[:20]}… in time") from None

    async def push(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """POST wire events; returns the peer's ingest report."""
        return _expect_dict(await self.request("POST", f"{API}/events", body={"events": list(events)}),
                            self.url, "push")

    async def stream(self, after: int = 0, limit: int = 0, timeout: float | None = None
                     ) -> AsyncIterator[dict[str, Any]]:
        """Follow the peer's feed from `after` (NDJSON); heartbeats are skipped.
        `timeout` bounds the whole follow (None: until the peer closes it)."""
        params = {"after": after}
        if limit:
            params["limit"] = limit
        ctimeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5.0)
        try:
            async with self.session.get(f"{self.url}{API}/feed/stream", params=params, timeout=ctimeout,
                                        headers=self._headers(), allow_redirects=False) as resp:
                if resp.status >= 400:
                    code, message = _error_of(await resp.read(), resp.reason or "")
                    raise PeerRefused(self.url, resp.status, code, message)
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    if len(buffer) > MAX_LINE:
                        raise PeerUnavailable(f"{self.url}: feed line exceeds {MAX_LINE} bytes")
                    for line in lines:
                        if line.strip():
                            yield orjson.loads(line)
        except (aiohttp.ClientError, OSError) as exc:
            raise PeerUnavailable(f"{self.url} is unreachable: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise PeerUnavailable(f"{self.url}: feed follow timed out") from None


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise PeerUnavailable(f"{url}: answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error_of(raw: bytes, reason: str) -> tuple[str, str]:
    try:
        err = orjson.loads(raw)["error"]
        return str(err.get("code", "error")), str(err.get("message", reason))
    except Exception:
        return "error", raw[:200].decode("utf-8", "replace") or reason


def _expect_dict(value: Any, url: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PeerUnavailable(f"{url}: malformed {what} answer")
    return value


def _expect_list(value: Any, url: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PeerUnavailable(f"{url}: malformed {what} answer")
    return value
