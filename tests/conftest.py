"""Fixtures shared by the test areas: the node family (the database URLs are in /conftest.py).

One name per kind of node, so a test's signature says what it gets:

  ``async_node``           a ComputeNetwork started on the test's event loop (function scope).
  ``async_node_factory``   ``await make(name, **options)`` starts more of them, or other options
                           (``quote_window=30.0`` keeps a task pending); all stop after the test.
  ``node_thread``          a ComputeNetwork served from its own thread and loop (`NodeThread`), for
                           synchronous clients: the CLI, requests, Selenium (function scope).

All listen on a free loopback port, log at WARNING and close quotes after 50 ms
(tests.support.nodes.DEFAULTS). A module whose tests share one node (module scope) or need
other options overrides the same name, built with `started_network` or `NodeThread`, so
`async_node` is always a ComputeNetwork on the loop and `node_thread` always a NodeThread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from ledger_net.main import ComputeNetwork
from tests.support.nodes import AsyncNodeFactory, NodeThread, started_network


@pytest.fixture
async def async_node_factory(tmp_path: Path) -> AsyncIterator[AsyncNodeFactory]:
    async with AsyncExitStack() as stack:

        async def make(name: str = "node", **options: Any) -> ComputeNetwork:
            return await stack.enter_async_context(started_network(tmp_path / name, **options))

        yield make


@pytest.fixture
async def async_node(async_node_factory: AsyncNodeFactory) -> ComputeNetwork:
    return await async_node_factory("node")


@pytest.fixture
def node_thread(tmp_path: Path) -> Iterator[NodeThread]:
    node = NodeThread(tmp_path / "node").start()
    yield node
    node.stop()
