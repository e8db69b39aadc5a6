"""Who may call a control route: the node's API token (kept in `DATA_DIR/api.token`), the
loopback exemption for reads, and the browser checks (Host against DNS rebinding, Origin,
a JSON body) that keep a web page from forging a control request. `@control` applies them.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from ..ledger.datadir import DataDir
from .responses import ApiError

TOKEN_HEADER = "X-API-Token"
TOKEN_KEY: web.AppKey[str | None] = web.AppKey("api_token")
TRUST_LOOPBACK_KEY: web.AppKey[bool] = web.AppKey("trust_loopback")


def load_or_create_token(data_dir: str | os.PathLike[str]) -> str:
    """The node's API token, kept (mode 0600) in `data_dir/api.token`; created once."""
    path = DataDir.of(data_dir).token
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return token


def read_token(data_dir: str | os.PathLike[str] | None) -> str | None:
    """The token in `data_dir/api.token` if there is one (never creates it): what a local
    client (CLI, Python API, bench) sends, since state-changing routes always need it."""
    if data_dir is None:
        return None
    path = DataDir.of(data_dir).token
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None


def is_loopback(request: web.Request) -> bool:
    remote = request.remote
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6][:port]` as (lower-case host, port); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    port: str | None = None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return None
        host, rest = value[1:close], value[close + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:  # a bare IPv6 literal
        host = value
    else:
        host = value
    host = host.rstrip(".")
    if not host or any(c in host for c in "/?#@ \\"):
        return None
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


class HostPolicy:
    """Which `Host` names a node answers control requests for, against DNS rebinding: a
    page of evil.example that rebinds its name to 127.0.0.1 still sends `Host: evil.example`.
    Allowed: the bound host, localhost, 127.0.0.1, ::1, the public URL's host and the
    configured names (`"*"` turns the check off). When the node binds every address
    (0.0.0.0 / ::), any IP literal is allowed too: a rebinding attack always carries a name."""

    def __init__(self, bound_host: str | None = None, names: Iterable[str] = (), public_url: str | None = None
                 ) -> None:
        self.any = False
        self.any_ip = False
        self.names: set[str] = set(LOCAL_NAMES)
        for name in [bound_host, *names]:
            if not name:
                continue
            if name.strip() == "*":
                self.any = True
                continue
            parsed = split_host(name)
            if parsed is None:
                raise ValueError(f"not a host name: {name!r}")
            if parsed[0] in ("0.0.0.0", "::"):
                self.any_ip = True
            else:
                self.names.add(parsed[0])
        if public_url:
            from urllib.parse import urlsplit

            host = urlsplit(public_url if "://" in public_url else f"http://{public_url}").hostname
            if host:
                self.names.add(host.lower().rstrip("."))

    def allows(self, host: str) -> bool:
        if self.any or host in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False


HOST_POLICY_KEY: web.AppKey[HostPolicy] = web.AppKey("host_policy")


def check_browser_safety(request: web.Request) -> None:
    """Refuse what a web page could forge: a `Host` this node does not answer to (DNS
    rebinding) and an `Origin` other than the node's own (the page's origin must be the
    very host:port the request went to)."""
    policy = request.app.get(HOST_POLICY_KEY)
    host_header = request.headers.get("Host", "")
    parsed = split_host(host_header)
    if parsed is None or (policy is not None and not policy.allows(parsed[0])):
        raise ApiError(403, "bad_host", f"this node does not answer control requests for Host "
                                        f"{host_header[:100]!r}; add the name to the node's allowed hosts "
                                        "(--allow-host) if it is yours")
    origin = request.headers.get("Origin")
    if origin is not None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(origin.strip())
            o_host, o_port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            parts, o_host, o_port = None, "", None
        if parts is None or parts.scheme not in ("http", "https") or not o_host:
            raise ApiError(403, "bad_origin", f"requests from origin {origin[:100]!r} are refused")
        o_port = o_port or (443 if parts.scheme == "https" else 80)
        h_host, h_port = parsed
        same_port = o_port == h_port if h_port is not None else o_port in (80, 443)
        if o_host != h_host or not same_port:
            raise ApiError(403, "bad_origin", f"cross-origin request from {origin[:100]!r} refused: only pages "
                                              "served by this node may call its control API")


def check_body_type(request: web.Request) -> None:
    """A state-changing request's body, if any, is `application/json`: a form or a
    `text/plain` body is what a web page can send without a CORS preflight. An empty
    body (a bare POST such as cancel or sync) carries nothing to check."""
    if request.method not in SAFE_METHODS and request.can_read_body and request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "control requests carry a JSON body "
                                                      f"(Content-Type: application/json), not "
                                                      f"{request.content_type[:80]!r}")


def require_control(request: web.Request) -> None:
    """Control actions need the node's API token. State-changing ones (POST, DELETE)
    always do, from loopback too: a browser page cannot read the token, so it cannot
    forge them. Read-only ones need none from loopback (when the node trusts it, the
    default). Every control request also passes `check_browser_safety` (Host, Origin)
    first and `check_body_type` last."""
    check_browser_safety(request)
    app = request.app
    if request.method in SAFE_METHODS and app[TRUST_LOOPBACK_KEY] and is_loopback(request):
        return
    token = app[TOKEN_KEY]
    given = request.headers.get(TOKEN_HEADER)
    auth = request.headers.get("Authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not token:
        raise ApiError(403, "forbidden", "control actions are disabled on this node (no API token configured)")
    if not given:
        raise ApiError(401, "unauthorized", f"control action needs the node API token ({TOKEN_HEADER} header "
                                            "or Authorization: Bearer; a local client reads it from "
                                            "DATA_DIR/api.token)")
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, "forbidden", "wrong API token")
    check_body_type(request)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control(handler: Handler) -> Handler:
    """Decorate a control route handler (see `require_control`)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        require_control(request)
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "control")
    wrapped.__doc__ = handler.__doc__
    return wrapped
