"""The OpenAPI description against the node that serves it.

1. It is a valid OpenAPI 3.1 document, and every route of the live aiohttp router
   (but HEAD, which aiohttp adds for each GET) is described — a new route without a
   description fails here.
2. A property-based run (schemathesis, positive and negative data) against a live
   node finds no 5xx and no undocumented answer: status codes, content types and
   bodies are what the description says. Bounded: a few examples per operation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ledger_net.network.openapi import OPENAPI_PATH, build_spec
from tests.support.nodes import NodeThread

pytestmark = pytest.mark.timeout(180)

EXAMPLES = 25  # per operation (positive and negative data together)
# Not fuzzed (still described and covered above): an endless NDJSON follow, the
# WebSocket upgrade, connecting to arbitrary generated URLs (no traffic off loopback),
# and task submission (a valid generated task would start real sandboxed work).
NOT_FUZZED = {("GET", "/api/v1/feed/stream"), ("GET", "/ws"), ("POST", "/api/v1/peers"), ("POST", "/api/v1/tasks")}


@pytest.fixture(scope="module")
def node_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    """One node for the module (the fuzzing tests share it)."""
    node = NodeThread(tmp_path_factory.mktemp("openapi-node")).start()
    yield node
    node.stop()


def served_routes(node_thread: NodeThread) -> set[tuple[str, str]]:
    assert node_thread.network.server is not None and node_thread.network.server.app is not None
    out = set()
    for route in node_thread.network.server.app.router.routes():
        if route.method == "HEAD":
            continue
        out.add((route.method, route.resource.canonical))
    return out


def test_spec_is_valid_openapi_31(node_thread: NodeThread) -> None:
    from openapi_spec_validator import validate

    answer = requests.get(node_thread.url + OPENAPI_PATH, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    spec = answer.json()
    assert spec["openapi"].startswith("3.1")
    assert spec["servers"] == [{"url": node_thread.url}]
    validate(spec)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation.get("responses"), f"{method} {path} has no responses"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"


def test_every_served_route_is_described(node_thread: NodeThread) -> None:
    spec = build_spec()
    described = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    served = served_routes(node_thread)
    assert served - described == set(), f"routes the node serves without a description: {served - described}"
    assert described - served == set(), f"described routes the node does not serve: {described - served}"


def test_property_based_api_run_finds_no_5xx_and_no_undocumented_answer(node_thread: NodeThread) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks

    started = time.monotonic()
    spec = requests.get(node_thread.url + OPENAPI_PATH, timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=node_thread.url)
    run_checks = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                  checks.response_schema_conformance]
    failures: list[str] = []
    calls: dict[str, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation: Any = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in NOT_FUZZED:
            continue
        operations += 1
        strategy = (operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
                    | operation.as_strategy())

        @given(case=strategy)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def call(case: Any) -> None:  # run right below, in this iteration: the loop's key is this one's
            calls[f"{key[0]} {key[1]}"] = calls.get(f"{key[0]} {key[1]}", 0) + 1  # noqa: B023 -- see above
            case.call_and_validate(checks=run_checks, timeout=10)

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures (a FailureGroup)
            failures.append(f"{key[0]} {key[1]}: {exc}"[:2000])
    elapsed = time.monotonic() - started
    assert not failures, "\n\n".join(failures)
    assert operations >= 25 and all(n >= 1 for n in calls.values()) and len(calls) == operations
    assert elapsed < 60, f"the API run took {elapsed:.1f}s"
    # the node is still healthy after the run
    assert requests.get(node_thread.url + "/api/v1/info", timeout=10).status_code == 200
