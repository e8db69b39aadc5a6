"""A node's INFO log reads as a story: repeated lines collapse, per-chunk chatter is DEBUG."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from ledger_net.core.task import Task
from ledger_net.logs import RepeatFilter
from ledger_net.main import ComputeNetwork


def record(msg: str, *args: object, name: str = "ledger_net.x", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_pass_in_a_burst_then_collapse_and_say_how_many() -> None:
    now = [0.0]
    f = RepeatFilter(burst=3, window=10.0, clock=lambda: now[0])
    passed = [f.filter(record("peer %s failed", i)) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert f.filter(record("another message"))  # counted apart
    now[0] = 11.0
    again = record("peer %s failed", 99)
    assert f.filter(again)
    assert again.getMessage() == "peer 99 failed (7 similar message(s) suppressed)"
    assert f.filter(record("peer %s failed", 1))  # still within the new window's burst


async def test_a_many_chunk_task_tells_its_story_in_a_few_info_lines(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ledger_net")
    net = ComputeNetwork(port=0, data_dir=tmp_path / "n", initial_credits=1000.0, workers=1)
    await net.start()
    try:
        caplog.clear()
        task = Task.create_range_reduce(net.ledger.node_id, 1, 300_000, "sum", {},
                                        {"chunk_size": 1000, "max_price": 100.0})
        task_id = await net.submit_task(task.to_dict())
        for _ in range(1200):
            status = await net.get_task_status(task_id)
            if status["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.05)
        assert status["status"] == "completed", status
        info = [r for r in caplog.records if r.levelno == logging.INFO and r.name.startswith("ledger_net")]
        assert any(f"task {task_id} completed" in r.getMessage() for r in info)
        assert len(info) <= 10, [r.getMessage() for r in info]  # 300 chunks, a handful of lines
    finally:
        await net.stop()
