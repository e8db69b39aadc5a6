"""Helpers for tests that run tasks on a node (this module holds no tests)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork
from ledger_net.projections.status import TERMINAL


async def run_task(net: ComputeNetwork, task: Task, timeout: float = 60.0) -> dict[str, Any]:
    """Submit ``task`` and poll its status until it ends; fail the test after ``timeout`` seconds."""
    task_id = await net.submit_task(task.to_dict())
    deadline = time.monotonic() + timeout
    while True:
        status = await net.get_task_status(task_id)
        if status["status"] in TERMINAL:
            return status
        assert time.monotonic() < deadline, f"task {task_id} still {status['status']} after {timeout}s"
        await asyncio.sleep(0.05)
