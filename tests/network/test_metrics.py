"""`GET /metrics`: valid Prometheus text (parsed by prometheus_client's parser and a
strict line grammar), and the numbers move with real activity: a task run, an
ingested foreign event, a second node syncing (lag per peer)."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from ledger_net.core.task import Task
from ledger_net.ledger.identity import Identity
from ledger_net.main import ComputeNetwork
from ledger_net.network.client import PeerClient
from ledger_net.network.metrics import Exposition, heads_difference
from tests.support.replication import forge
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_LABELS = r'\{(?:' + _LABEL + r')(?:,' + _LABEL + r')*\}'
_SAMPLE = re.compile(rf"^{_NAME}(?:{_LABELS})? (?:[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|NaN|[+-]Inf)$")
_META = re.compile(rf"^# (?:HELP {_NAME} .*|TYPE {_NAME} (?:counter|gauge|histogram|summary|untyped))$")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Check every line against the text-format grammar, then parse with prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    assert text.endswith("\n")
    for line in text.splitlines():
        assert _SAMPLE.match(line) or _META.match(line), f"not Prometheus text format: {line!r}"
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse(await answer.text())


def test_exposition_escapes_and_renders_special_values() -> None:
    out = Exposition()
    out.gauge("x_gauge", "a help\nwith newline", [({"peer": 'a"b\\c\nd'}, float("nan")), ({"peer": "z"}, 1.5)])
    out.counter("x_events", "count", 3)
    samples = parse(out.render())
    assert value(samples, "x_gauge", peer="z") == 1.5
    assert value(samples, "x_events_total") == 3
    with pytest.raises(ValueError):
        out.counter("x_events", "twice", 1)


def test_heads_difference_counts_both_ways() -> None:
    ours = {"a": [5, "h"], "b": [2, "h"]}
    theirs = {"a": [3, "h"], "c": [4, "h"]}
    assert heads_difference(ours, theirs) == (4, 4)  # they have c1..c4; we have a4, a5, b1, b2


async def test_metrics_move_with_activity(tmp_path: Path) -> None:
    a = ComputeNetwork(host="127.0.0.1", port=0, data_dir=tmp_path / "a", sync_interval=0.2)
    await a.start()
    b: ComputeNetwork | None = None
    try:
        url = a.server.url  # type: ignore[union-attr]
        before = await scrape(url)
        assert value(before, "ledger_net_up") == 1
        assert value(before, "ledger_net_credits_minted") == 100
        assert value(before, "ledger_net_credits", state="balance") == 100
        assert value(before, "ledger_net_credits_conserved") == 1
        assert value(before, "ledger_net_tasks", status="completed") == 0

        task = Task.create_range_reduce(owner_id=a.node.node_id, start=1, end=1000, operation="sum",  # type: ignore[union-attr]
                                        requirements={"timeout_seconds": 30}, config={"max_price": 0.1})
        task_id = await a.submit_task(task.to_dict())

        async def done() -> bool:
            return (await a.get_task_status(task_id))["status"] == "completed"

        await wait_until(done, 30.0, what="the task to complete", interval=0.1)
        after = await scrape(url)
        assert value(after, "ledger_net_tasks", status="completed") == 1
        for kind in ("task.submitted", "task.assigned", "task.completed"):
            assert value(after, "ledger_net_events_appended_total", type=kind) == 1
        assert value(after, "ledger_net_last_offset") > value(before, "ledger_net_last_offset")
        assert value(after, "ledger_net_chunks_executed_total") >= 1
        assert value(after, "ledger_net_credits_conserved") == 1
        assert value(after, "ledger_net_credits_minted") == 100
        assert value(after, "ledger_net_state_age_seconds") >= 0

        # a foreign event ingested (valid, but without effect: an overspend)
        mallory = Identity.generate()
        item = forge(mallory, net=a.ledger.net, seq=1, prev=None, type="credit.transfer",  # type: ignore[union-attr]
                     body={"to": a.ledger.node_id, "amount": 7})  # type: ignore[union-attr]
        async with PeerClient(url) as client:
            await client.push([item])
        pushed = await scrape(url)
        assert value(pushed, "ledger_net_events_ingested_total", type="credit.transfer") == 1
        assert value(pushed, "ledger_net_events_without_effect_total", origin="foreign", type="credit.transfer") == 1

        # a second node joins: per-peer sync lag appears on both sides and drains to 0
        b = ComputeNetwork(host="127.0.0.1", port=0, data_dir=tmp_path / "b", seed_nodes=[url], sync_interval=0.2)
        await b.start()
        b_url = b.server.url  # type: ignore[union-attr]

        async def synced() -> bool:
            seen = await scrape(b_url)
            lags = {k: v for k, v in seen.items() if k[0] == "ledger_net_sync_lag_events"}
            return bool(lags) and all(v == 0 for v in lags.values()) and \
                value(seen, "ledger_net_events_ingested_total", type="task.completed") == 1

        await wait_until(synced, 30.0, what="B to scrape as synced", interval=0.1)
        seen = await scrape(b_url)
        peer = dict(next(k for k in seen if k[0] == "ledger_net_sync_lag_events")[1])
        assert peer["peer"] == url
        assert value(seen, "ledger_net_sync_events_total", direction="pulled") >= 1
        assert value(seen, "ledger_net_peers") >= 1
    finally:
        if b is not None:
            await b.stop()
        await a.stop()
