"""The seed's ``Node`` (and, re-exported from ``core.capabilities``, its ``Capabilities``): what a
machine offers and whether it can take a task now.

A node is either

* **bound** to a network (``node.bind(ledger, runner, peers=...)``, done by ``ComputeNetwork``):
  its ledger key is its identity, ``start()`` records ``node.joined`` there (once), and
  ``update_capabilities`` records ``node.updated``; or
* **standalone** (the seed's example): ``start()`` opens a private in-memory network
  (:func:`~ledger_net.core.private_ledger.private_network`) and records its ``node.joined``
  there. Its ``node_id`` (``"node-001"``) is a label; the ledger key (``status["ledger_id"]``)
  is its identity. It has no peers: ``connect_to_peer`` raises :class:`NetworkError`.

Signed events carry integers only, so capabilities go to the ledger as ``Capabilities.to_ledger()``
(milli-scores, MiB). ``stop()`` appends nothing: nodes go offline silently (a crash looks the
same); ``node.left`` is written only by an explicit ``leave()``.

State rules: ``get_status``/``get_current_load``/``update_capabilities`` work in any state;
``start()`` on a running node raises :class:`NodeError` (a double start is a caller bug);
``stop()`` on a stopped node does nothing (so ``finally: await node.stop()`` is always safe);
peer operations need a running node.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from ..errors import LedgerError, NetworkError, NodeError
from ..ledger.chain import Ledger
from ..projections.rows import NodeRow
from ..projections.runner import ProjectionRunner
from .capabilities import (
    ALL_TASK_TYPES,
    PPM,
    Capabilities,
    LoadProbe,
    unmet_requirements,
    validate_requirements,
)
from .private_ledger import private_network

NODE_TYPES = ("client", "public", "seed")  # the seed's kinds of node
MAX_LABEL = 128


# --------------------------------------------------------------------------- peers
@runtime_checkable
class PeerDirectory(Protocol):
    """What the network layer gives a bound node to manage its peer connections."""

    async def connect(self, peer_id: str) -> bool: ...

    async def disconnect(self, peer_id: str) -> bool: ...

    def list(self) -> builtins.list[dict[str, Any]]: ...


# --------------------------------------------------------------------------- node
def _label(value: Any, what: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise NodeError(f"{what} must be a non-empty string of at most {max_len} characters, got {value!r}")
    return value


class Node:
    """One machine of the network: capabilities, live load, task slots, ledger presence and peers."""

    def __init__(self, node_id: str, host: str, port: int, capabilities: Capabilities | None = None,
                 node_type: str = "client") -> None:
        self.node_id = _label(node_id, "node_id", MAX_LABEL)
        self.host = _label(host, "host", 255)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise NodeError(f"port must be an integer 0..65535, got {port!r}")
        self.port = port
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            capabilities = Capabilities.from_any(capabilities)
        self.capabilities: Capabilities = capabilities or Capabilities.detect()
        self.node_type = _label(node_type, "node_type", 32)
        if self.node_type not in NODE_TYPES:
            raise NodeError(f"node_type must be one of {', '.join(NODE_TYPES)}, not {node_type!r}")
        self.probe = LoadProbe()
        self.ledger: Ledger | None = None
        self.runner: ProjectionRunner | None = None
        self.peers: PeerDirectory | None = None
        self._bound = False
        self._online = False
        self._started_at: float | None = None
        self._active = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------- wiring
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_online(self) -> bool:
        return self._online

    @property
    def is_bound(self) -> bool:
        return self._bound

    @property
    def ledger_id(self) -> str | None:
        """The ledger key that is this node's identity (None for a standalone node not yet started)."""
        return self.ledger.node_id if self.ledger is not None else None

    def bind(self, ledger: Ledger, runner: ProjectionRunner, peers: PeerDirectory | None = None) -> None:
        """Attach the node to a network's ledger (and its peer table); only while stopped."""
        if self._online:
            raise NodeError(f"node {self.node_id} is running; stop it before binding it to another ledger")
        if ledger.identity is None:
            raise NodeError("a node needs a ledger with a local identity to sign its events")
        if runner.ledger is not ledger:
            raise NodeError("runner must be the projection runner of the same ledger")
        self.ledger, self.runner, self.peers, self._bound = ledger, runner, peers, True

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Go online: record (or refresh) this node's presence in its ledger and prime the CPU probe."""
        if self._online:
            raise NodeError(f"node {self.node_id} is already running")
        if self.ledger is None:
            self.ledger, self.runner = private_network(f"node-{self.node_id[:40]}")
        self.probe.prime()
        self._announce()
        self._online = True
        self._started_at = time.monotonic()

    async def stop(self) -> None:
        """Go offline silently (no event: a stop and a crash look alike to peers). No-op when stopped."""
        self._online = False
        self._started_at = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def leave(self, reason: str = "left the network") -> None:
        """Say goodbye in the ledger (``node.left``), then stop."""
        if self.ledger is None:
            raise NodeError(f"node {self.node_id} has never started; there is nothing to leave")
        self._append("node.left", {"reason": str(reason)[:4096]})
        await self.stop()

    def _recorded(self) -> NodeRow | None:
        assert self.runner is not None and self.ledger is not None
        return self.runner.nodes.nodes.get(self.ledger.node_id)

    def _announce(self) -> None:
        """``node.joined`` unless the ledger already shows this node online; then only what changed."""
        import orjson

        row = self._recorded()
        caps = self.capabilities.to_ledger()
        if row is None or row["status"] != "online":
            self._append("node.joined", {"name": self.node_id, "url": self.url, "capabilities": caps,
                                         "node_type": self.node_type})
            return
        changed: dict[str, Any] = {}
        if row["name"] != self.node_id:
            changed["name"] = self.node_id
        if row["url"] != self.url:
            changed["url"] = self.url
        if orjson.loads(row["capabilities"]) != caps:
            changed["capabilities"] = caps
        if changed:
            self._append("node.updated", changed)

    def _append(self, type_: str, body: dict[str, Any]) -> None:
        assert self.ledger is not None
        try:
            self.ledger.append(type_, body)
        except LedgerError as exc:
            raise NodeError(f"node {self.node_id} could not record {type_}: {exc}") from exc

    async def get_status(self) -> dict[str, Any]:
        """Everything about the node at a glance (works before start, too)."""
        return {"node_id": self.node_id, "host": self.host, "port": self.port, "url": self.url,
                "node_type": self.node_type, "status": "online" if self._online else "offline",
                "capabilities": self.capabilities.to_dict(), "load": self.get_current_load(),
                "peers": self.get_peer_list(), "uptime_seconds": self.uptime_seconds(),
                "active_tasks": self._active, "ledger_id": self.ledger_id,
                "network_id": self.ledger.net if self.ledger is not None else None,
                "standalone": not self._bound}

    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_at if self._started_at is not None else 0.0

    # ------------------------------------------------------------- capabilities and load
    def update_capabilities(self, capabilities: Capabilities | Mapping[str, Any]) -> None:
        """Change some capabilities (seed float names); a running node records ``node.updated``."""
        if isinstance(capabilities, Capabilities):
            new = dataclasses.replace(capabilities)
        else:
            if not isinstance(capabilities, Mapping):
                raise NodeError(f"capabilities must be a dict, got {type(capabilities).__name__}")
            unknown = set(capabilities) - set(Capabilities.__dataclass_fields__)
            if unknown:
                raise NodeError(f"unknown capability fields: {', '.join(sorted(unknown))}; known: "
                                + ", ".join(Capabilities.__dataclass_fields__))
            new = Capabilities(**{**self.capabilities.to_dict(), **dict(capabilities)})
        before = self.capabilities.to_ledger()
        self.capabilities = new
        if self._online and new.to_ledger() != before:
            self._append("node.updated", {"capabilities": new.to_ledger()})

    def get_current_load(self) -> dict[str, float]:
        """Live load: CPU and RAM from psutil, plus this node's task slots."""
        system, external = self.probe.cpu()
        ram_percent, ram_available = self.probe.memory()
        slots = self.capabilities.max_concurrent_tasks
        active = self._active
        return {"cpu_percent": system, "cpu_external_percent": external, "ram_percent": ram_percent,
                "ram_available_gb": ram_available, "active_tasks": float(active),
                "max_concurrent_tasks": float(slots),
                "load_ratio": active / slots if slots else 1.0}

    def load_ppm(self) -> int:
        """One integer for prices and bids: the larger of slot use and CPU use, in ppm."""
        load = self.get_current_load()
        ratio = min(1.0, load["load_ratio"])
        return min(PPM, max(round(ratio * PPM), round(load["cpu_percent"] * 10_000)))

    def publish_load(self) -> dict[str, int]:
        """Record the current load in the ledger (``node.updated``) as integers; returns what was written."""
        if not self._online:
            raise NodeError(f"node {self.node_id} is not running")
        load = self.get_current_load()
        body = {"cpu_ppm": round(load["cpu_percent"] * 10_000), "ram_ppm": round(load["ram_percent"] * 10_000),
                "active_tasks": self._active, "load_ppm": self.load_ppm()}
        self._append("node.updated", {"load": body})
        return body

    def unmet_requirements(self, task_requirements: dict[str, Any]) -> list[str]:
        """Why this node cannot take the task now (empty: it can). Malformed requirements: NodeError."""
        if not self._online:
            validate_requirements(task_requirements)
            return [f"node {self.node_id} is not running"]
        _, external = self.probe.cpu()
        _, ram_available = self.probe.memory()
        return unmet_requirements(self.capabilities, task_requirements, active_tasks=self._active,
                                  cpu_used_percent=external, ram_available_gb=ram_available)

    def is_available_for_task(self, task_requirements: dict[str, Any]) -> bool:
        """True when the node is running, has a free slot, enough free CPU and RAM, and offers
        the task's type, sandbox and GPU if asked. Malformed requirements raise NodeError."""
        return not self.unmet_requirements(task_requirements)

    def can_run(self, task_type: str, requirements: Mapping[str, Any] | None = None) -> bool:
        """Should this node bid on a (possibly foreign) task? Malformed requirements mean no, not an error."""
        try:
            return self.is_available_for_task({**dict(requirements or {}), "task_type": task_type})
        except (NodeError, TypeError, ValueError):
            return False

    # ------------------------------------------------------------- task slots (execution engine)
    @property
    def active_tasks(self) -> int:
        return self._active

    def task_started(self) -> int:
        """Take a task slot; NodeError when all are in use (the caller skipped the availability check)."""
        with self._lock:
            if self._active >= self.capabilities.max_concurrent_tasks:
                raise NodeError(f"node {self.node_id} has no free task slot "
                                f"({self._active}/{self.capabilities.max_concurrent_tasks})")
            self._active += 1
            return self._active

    def task_finished(self) -> int:
        """Give a task slot back; NodeError if none was taken (unbalanced calls are a bug)."""
        with self._lock:
            if self._active <= 0:
                raise NodeError(f"node {self.node_id}: task_finished without a running task")
            self._active -= 1
            return self._active

    @contextmanager
    def task_slot(self) -> Iterator[None]:
        """``with node.task_slot(): run_chunk(...)`` — started/finished balanced even on errors."""
        self.task_started()
        try:
            yield
        finally:
            self.task_finished()

    # ------------------------------------------------------------- peers
    def _resolve_peer(self, peer_id: str) -> str:
        if not isinstance(peer_id, str) or not peer_id:
            raise NetworkError(f"peer id must be a non-empty string, got {peer_id!r}")
        if not self._online:
            raise NodeError(f"node {self.node_id} is not running; start it before managing peers")
        if not self._bound or self.peers is None:
            raise NetworkError(f"node {self.node_id} is standalone: no network is attached, so it has no peers "
                               f"to connect to (run it inside ComputeNetwork to join one)")
        me = self.ledger_id
        if peer_id in (me, self.node_id, self.url):
            raise NetworkError(f"{peer_id!r} is this node itself")
        nodes = self.runner.nodes.nodes if self.runner is not None else {}
        if peer_id in nodes and peer_id != me:
            return peer_id
        named = sorted(k for k, row in nodes.items() if k != me and (row["name"] == peer_id or row["url"] == peer_id))
        if len(named) > 1:
            raise NetworkError(f"peer name {peer_id!r} is ambiguous: {len(named)} nodes use it; give the key")
        if named:
            return named[0]
        for peer in self.peers.list():
            if peer_id in (peer.get("node_id"), peer.get("url"), peer.get("name")):
                return peer_id
        raise NetworkError(f"unknown peer {peer_id!r}: not in the ledger's node directory nor the peer table")

    async def connect_to_peer(self, peer_id: str) -> bool:
        """Connect to a peer named by key, label or URL; NetworkError if unknown or standalone."""
        target = self._resolve_peer(peer_id)
        assert self.peers is not None
        return bool(await self.peers.connect(target))

    async def disconnect_from_peer(self, peer_id: str) -> bool:
        target = self._resolve_peer(peer_id)
        assert self.peers is not None
        return bool(await self.peers.disconnect(target))

    def get_peer_list(self) -> list[dict[str, Any]]:
        """Peers the network layer knows (empty for a standalone node)."""
        return list(self.peers.list()) if self.peers is not None else []

    def __repr__(self) -> str:
        return (f"Node({self.node_id!r}, {self.url}, {self.node_type}, "
                f"{'online' if self._online else 'offline'}, ledger_id={(self.ledger_id or '')[:12]!r})")


__all__ = ["ALL_TASK_TYPES", "Capabilities", "LoadProbe", "Node", "PeerDirectory", "unmet_requirements",
           "validate_requirements"]
