"""Fuzzed control requests never get a 5xx (issue 10, item 6).

Hypothesis sends a live node bodies of every JSON shape (and some that are not
JSON), with and without the token, under assorted content types and Host/Origin
headers, to every state-changing control route and the read-only ones with their
query parameters. Every answer is below 500 and, when refused, a JSON
`{"error": {"code", "message"}}`. Bounded: a fixed number of derandomized examples.
Quotes are awaited 30 s, so a task that happens to be valid stays pending (no
sandboxed work runs during the test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_net.network.auth import TOKEN_HEADER
from ledger_net.network.protocol import API
from tests.support.nodes import NodeThread

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 150

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                          max_leaves=12)
task_like = st.fixed_dictionaries({"task_type": st.one_of(st.sampled_from(
    ["range_reduce", "map", "map_reduce", "matrix_ops", "ml_inference", "code", "teleport"]), json_value)},
    optional={"config": json_value, "requirements": json_value, "priority": json_value, "task_id": json_value,
              "start": json_value, "end": json_value, "operation": json_value})
transfer_like = st.fixed_dictionaries({}, optional={"to": json_value, "amount": json_value, "extra": json_value})
bodies = st.one_of(task_like, transfer_like, json_value.map(lambda v: json.dumps(v).encode()),
                   st.binary(max_size=64), st.just(b""), st.just(b"[" * 2000),
                   st.just(b'{"a":' * 600 + b"1" + b"}" * 600))
content_types = st.sampled_from([None, "application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "application/JSON", "", "*/*"])
routes = st.sampled_from([("POST", "/tasks"), ("POST", "/transfers"), ("POST", "/tasks/{x}/cancel"),
                          ("POST", "/peers"), ("DELETE", "/peers/{x}"), ("GET", "/tasks"), ("GET", "/tasks/{x}"),
                          ("GET", "/tasks/{x}/result"), ("GET", "/balance"), ("GET", "/accounts/{x}"),
                          ("GET", "/history")])
queries = st.dictionaries(st.sampled_from(["limit", "status", "owner", "after", "before"]),
                          st.one_of(st.text(max_size=12), st.integers(-5, 2 ** 70).map(str)), max_size=3)
hosts = st.sampled_from([None, "evil.example", "localhost", "[::1]", "", "a b", "127.0.0.1:1"])
origins = st.sampled_from([None, "null", "http://evil.example", "file://", "http://127.0.0.1"])


@pytest.fixture(scope="module")
def node_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    """One node for the module; quotes are awaited 30 s, so a submitted task stays pending."""
    node = NodeThread(tmp_path_factory.mktemp("fuzz-node"), log_level="WARNING", quote_window=30.0).start()
    yield node
    node.stop()


def test_fuzzed_control_requests_never_get_a_5xx(node_thread: NodeThread) -> None:
    token = node_thread.network.server.token if node_thread.network.server else None
    assert token
    session = requests.Session()
    seen: dict[int, int] = {}

    @given(route=routes, body=bodies, content_type=content_types, with_token=st.booleans(), query=queries,
           host=hosts, origin=origins, segment=st.one_of(st.text(min_size=1, max_size=40), st.just("ab" * 32)))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def call(route: tuple[str, str], body: Any, content_type: str | None, with_token: bool, query: dict[str, str],
             host: str | None, origin: str | None, segment: str) -> None:
        method, template = route
        path = API + template.replace("{x}", requests.utils.quote(segment, safe=""))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if with_token:
            headers[TOKEN_HEADER] = token
        if host is not None:
            headers["Host"] = host
        if origin is not None:
            headers["Origin"] = origin
        answer = session.request(method, node_thread.url + path, params=query, data=data if method != "GET" else None,
                                 headers=headers, timeout=30)
        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, (method, path, data[:200], headers, answer.text[:500])
        if answer.status_code >= 400:
            error = answer.json()["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)

    call()
    assert any(s < 300 for s in seen) and any(s >= 400 for s in seen), seen  # both sides were reached
    assert requests.get(node_thread.url + "/readyz", timeout=10).status_code == 200
