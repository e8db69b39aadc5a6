"""Control routes a browser cannot forge (issue 10, item 5), on a live `ComputeNetwork`.

A web page the operator opens (or a DNS-rebinding attack on the node's port) can send
requests with a foreign `Origin`, a foreign `Host`, `text/plain` or form bodies, and
no token. Every such request is refused with a 4xx JSON error and moves no credits;
the same transfer sent properly (token, JSON, no foreign origin) goes through, so
the refusals are not an accident of the setup. `/healthz` and `/readyz` answer,
and the control routes agree with `/readyz`.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from ledger_net.ledger.identity import Identity
from ledger_net.main import ComputeNetwork
from ledger_net.network.auth import TOKEN_HEADER, HostPolicy, read_token
from ledger_net.network.protocol import API
from tests.support.nodes import AsyncNodeFactory

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def async_node(async_node_factory: AsyncNodeFactory) -> ComputeNetwork:
    """The victim: quotes awaited 30 s (a task stays pending) and one allowed public host name."""
    return await async_node_factory("victim", quote_window=30.0, allowed_hosts=["node.example.org"])


async def call(url: str, method: str, path: str, *, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, \
            session.request(method, url + path, data=body, headers=headers or {},
                            skip_auto_headers=("Content-Type",)) as resp:
        raw = await resp.read()
        assert resp.content_type == "application/json", (resp.status, raw[:200])
        return resp.status, orjson.loads(raw)


async def test_forged_control_requests_are_refused_and_move_nothing(async_node: ComputeNetwork) -> None:
    assert async_node.server is not None and async_node.ledger is not None and async_node.server.url is not None
    url, port, ledger = async_node.server.url, async_node.server.port, async_node.ledger
    token = read_token(async_node.data_dir)
    assert token and token == async_node.server.token
    victim = Identity.generate().node_id
    transfer = orjson.dumps({"to": victim, "amount": 1})
    task = orjson.dumps({"task_type": "range_reduce", "config": {"start": 1, "end": 10, "operation": "sum",
                                                                  "max_price": 0.1}})
    json_type = {"Content-Type": "application/json"}
    good = {**json_type, TOKEN_HEADER: token}
    before_offset, before_balance = ledger.store.last_offset(), async_node.credits.get_balance()

    attacks: list[tuple[str, str, bytes | None, dict[str, str], int, str]] = [
        # what the issue reproduced: no token, foreign Origin and Host, text/plain
        ("POST", "/transfers", transfer, {"Origin": "http://evil.example", "Host": f"evil.example:{port}",
                                          "Content-Type": "text/plain"}, 403, "bad_host"),
        # a plain cross-site form post (no token: a page cannot read it)
        ("POST", "/tasks", b"task_type=range_reduce&config=x", {"Origin": "http://evil.example",
                                                                 "Content-Type": "application/x-www-form-urlencoded"},
         403, "bad_origin"),
        ("POST", "/tasks", b"task_type=range_reduce", {"Content-Type": "application/x-www-form-urlencoded"},
         401, "unauthorized"),
        # no token on loopback, even with a perfect JSON body
        ("POST", "/transfers", transfer, json_type, 401, "unauthorized"),
        ("POST", "/sync", None, {}, 401, "unauthorized"),
        ("DELETE", "/peers/" + "ab" * 32, None, {}, 401, "unauthorized"),
        # with the token, each browser-forgeable trait alone is refused
        ("POST", "/transfers", transfer, {**good, "Origin": "http://evil.example"}, 403, "bad_origin"),
        ("POST", "/transfers", transfer, {**good, "Origin": "null"}, 403, "bad_origin"),
        ("POST", "/transfers", transfer, {**good, "Origin": f"http://127.0.0.1:{port + 1}"}, 403, "bad_origin"),
        ("POST", "/transfers", transfer, {**good, "Host": f"evil.example:{port}"}, 403, "bad_host"),
        ("POST", "/transfers", transfer, {**good, "Host": f"127.0.0.1.evil.example:{port}"}, 403, "bad_host"),
        ("POST", "/transfers", transfer, {TOKEN_HEADER: token, "Content-Type": "text/plain"}, 415,
         "unsupported_media_type"),
        ("POST", "/transfers", transfer, {TOKEN_HEADER: token}, 415, "unsupported_media_type"),
        ("POST", "/transfers", transfer, {TOKEN_HEADER: token, "Content-Type": "multipart/form-data; boundary=x"},
         415, "unsupported_media_type"),
        ("POST", "/tasks", task, {TOKEN_HEADER: token, "Content-Type": "text/plain;charset=UTF-8"}, 415,
         "unsupported_media_type"),
        ("POST", "/transfers", transfer, {**good, TOKEN_HEADER: token + "x"}, 403, "forbidden"),
        # DNS rebinding against the token-free reads on loopback
        ("GET", "/balance", None, {"Host": f"evil.example:{port}"}, 403, "bad_host"),
        ("GET", "/history", None, {"Origin": "http://evil.example"}, 403, "bad_origin"),
    ]
    for method, path, body, headers, status, code in attacks:
        got, answer = await call(url, method, API + path, body=body, headers=headers)
        assert (got, answer["error"]["code"]) == (status, code), (method, path, headers, answer)
        assert answer["error"]["message"]
    assert ledger.store.last_offset() == before_offset  # nothing was appended
    assert async_node.credits.get_balance() == before_balance

    # the honest ways in still work: the CLI/Python API way, and a page served by the node itself
    status, answer = await call(url, "POST", f"{API}/transfers", body=transfer, headers=good)
    assert status == 201 and answer["kind"] == "transfer", answer
    status, answer = await call(url, "POST", f"{API}/transfers", body=transfer,
                                headers={**good, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 201, answer
    status, answer = await call(url, "POST", f"{API}/transfers", body=transfer,
                                headers={**good, "Host": f"node.example.org:{port}",
                                         "Content-Type": "application/json; charset=utf-8"})
    assert status == 201, answer  # a configured name (e.g. a reverse proxy's)
    assert async_node.credits.get_balance() == before_balance - 3
    # read-only control GETs stay token-free on loopback, and public routes ignore Host
    assert (await call(url, "GET", f"{API}/balance"))[0] == 200
    assert (await call(url, "GET", f"{API}/info", headers={"Host": "evil.example"}))[0] == 200


async def test_healthz_readyz_and_the_control_routes_agree(async_node: ComputeNetwork) -> None:
    assert async_node.server is not None
    url, token = async_node.server.url, async_node.server.token
    assert url is not None and token
    status, answer = await call(url, "GET", "/healthz")
    assert status == 200 and answer["status"] == "alive"
    status, answer = await call(url, "GET", "/readyz")
    assert status == 200 and answer["ready"] is True
    assert (await call(url, "GET", f"{API}/balance"))[0] == 200
    # the node is stopping: engine gone, server still answering. Both say not ready.
    async_node._started_at = None
    try:
        status, answer = await call(url, "GET", "/readyz")
        assert status == 503 and answer["error"]["code"] == "not_ready"
        for method, path, body in (("GET", "/balance", None), ("GET", "/tasks", None), ("GET", "/history", None),
                                   ("POST", "/tasks", b'{"task_type": "range_reduce"}'),
                                   ("POST", "/transfers", b'{"to": "x", "amount": 1}')):
            got, answer = await call(url, method, API + path, body=body,
                                     headers={TOKEN_HEADER: token, "Content-Type": "application/json"})
            assert (got, answer["error"]["code"]) == (503, "not_ready"), (path, answer)
        assert (await call(url, "GET", "/healthz"))[0] == 200  # alive all the same
    finally:
        async_node._started_at = 1.0
    assert (await call(url, "GET", "/readyz"))[0] == 200


async def test_a_task_config_that_is_not_an_object_is_a_400(async_node: ComputeNetwork) -> None:
    assert async_node.server is not None and async_node.ledger is not None
    before = async_node.ledger.store.last_offset()
    for config in ('"x"', "[1, 2]", "7", "true"):
        body = f'{{"task_type": "range_reduce", "config": {config}}}'.encode()
        status, answer = await call(async_node.server.url or "", "POST", f"{API}/tasks", body=body,
                                    headers={TOKEN_HEADER: async_node.server.token or "",
                                             "Content-Type": "application/json"})
        assert (status, answer["error"]["code"]) == (400, "invalid_task"), answer
    assert async_node.ledger.store.last_offset() == before


def test_host_policy() -> None:
    loopback = HostPolicy("127.0.0.1", ["Node.Example.org."])
    assert all(loopback.allows(h) for h in ("127.0.0.1", "localhost", "::1", "node.example.org"))
    assert not any(loopback.allows(h) for h in ("evil.example", "10.0.0.1", "localhost.evil.example"))
    everywhere = HostPolicy("0.0.0.0", public_url="https://ledger.example.net:8443")
    assert everywhere.allows("10.1.2.3") and everywhere.allows("ledger.example.net")
    assert not everywhere.allows("evil.example")
    assert HostPolicy("127.0.0.1", ["*"]).allows("anything.example")
    with pytest.raises(ValueError):
        HostPolicy("127.0.0.1", ["bad host/name"])
