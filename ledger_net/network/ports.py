"""What the route builders beside the replication API need of the node that serves them.

`ComputeNetwork` (main.py) satisfies these protocols; the builders (control, metrics and
openapi here, the explorer in ``web/``) take one of them and never import ``main``, so imports
run one way: main wires network and web, which know only the layers below them. Each port
names just what its builder reads. The attributes are read per request, because the node may
stop and restart under the same routes: they are None while its books are closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..core.credits import Credits
    from ..core.node import Node
    from ..ledger.chain import Ledger
    from ..projections.runner import ProjectionRunner
    from .server import NodeServer


class BooksPort(Protocol):
    """A node's open books and server: what every read route starts from."""

    @property
    def ledger(self) -> Ledger | None: ...

    @property
    def runner(self) -> ProjectionRunner | None: ...

    @property
    def server(self) -> NodeServer | None: ...


class ControlPort(BooksPort, Protocol):
    """The control API's node: its books, its wallet and the seed API's task calls."""

    @property
    def credits(self) -> Credits | None: ...

    def not_ready(self) -> str | None: ...

    async def submit_task(self, task_data: dict[str, Any]) -> str: ...

    async def get_task_status(self, task_id: str) -> dict[str, Any]: ...

    async def get_task_result(self, task_id: str) -> Any: ...

    async def cancel_task(self, task_id: str) -> bool: ...


class ExecutorCounters(Protocol):
    """The chunk executor's counters `/metrics` exports (execution is a sibling layer, so it is
    named by shape here, not imported)."""

    @property
    def stats(self) -> Mapping[str, int]: ...

    @property
    def failures(self) -> Mapping[str, int]: ...


class MetricsPort(BooksPort, Protocol):
    """`/metrics`'s node: its books and, when it works for others, its executor."""

    @property
    def executor(self) -> ExecutorCounters | None: ...


class ExplorerPort(BooksPort, Protocol):
    """The explorer's node: its books and the live `Node` (for this node's own load)."""

    @property
    def node(self) -> Node | None: ...


__all__ = ["BooksPort", "ControlPort", "ExecutorCounters", "ExplorerPort", "MetricsPort"]
