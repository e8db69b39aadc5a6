"""The seed's ``Node`` and ``Capabilities``: what a machine offers and whether it can take a task now.

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
import math
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import psutil

from ..errors import LedgerError, NetworkError, NodeError
from ..ledger.chain import Ledger
from ..projections.rows import NodeRow
from ..projections.runner import ProjectionRunner
from .private_ledger import private_network

ALL_TASK_TYPES: tuple[str, ...] = ("range_reduce", "map", "map_reduce", "matrix_ops", "ml_inference",
                                   "ml_train_step", "code")
DEFAULT_SANDBOX_TYPES: tuple[str, ...] = ("process_isolation",)
SANDBOX_TYPES: tuple[str, ...] = ("process_isolation", "wasm", "container")
NODE_TYPES = ("client", "public", "seed")  # the seed's kinds of node
MIB_PER_GB = 1024  # ram_gb / disk_gb are GiB; the ledger keeps MiB
PPM = 1_000_000
MAX_LABEL = 128


# --------------------------------------------------------------------------- capabilities
def _number(value: Any, what: str, *, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < lo:
        raise NodeError(f"{what} must be a finite number >= {lo:g}, got {value!r}")
    return float(value)


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise NodeError(f"{what} must be a list of names, got {value!r}")
    out = []
    for item in value:
        item = item.value if isinstance(item, Enum) else item
        if not isinstance(item, str) or not item:
            raise NodeError(f"{what} must hold non-empty strings, got {item!r}")
        if item not in out:
            out.append(item)
    return sorted(out)


@dataclasses.dataclass
class Capabilities:
    """What a node offers. Floats at the API (the seed's units), integers in the ledger."""

    cpu_score: float = 1.0
    ram_gb: float = 1.0
    disk_gb: float = 10.0
    gpu_score: float = 0.0
    max_concurrent_tasks: int = 4
    task_types: list[str] = dataclasses.field(default_factory=lambda: list(ALL_TASK_TYPES))
    sandbox_types: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_SANDBOX_TYPES))

    def __post_init__(self) -> None:
        self.cpu_score = _number(self.cpu_score, "cpu_score")
        self.ram_gb = _number(self.ram_gb, "ram_gb")
        self.disk_gb = _number(self.disk_gb, "disk_gb")
        self.gpu_score = _number(self.gpu_score, "gpu_score")
        m = self.max_concurrent_tasks
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise NodeError(f"max_concurrent_tasks must be a non-negative integer, got {m!r}")
        self.task_types = _names(self.task_types, "task_types")
        self.sandbox_types = _names(self.sandbox_types, "sandbox_types")

    def to_dict(self) -> dict[str, Any]:
        """The seed's float form (for status, WebSocket updates, users)."""
        return {"cpu_score": self.cpu_score, "ram_gb": self.ram_gb, "disk_gb": self.disk_gb,
                "gpu_score": self.gpu_score, "max_concurrent_tasks": self.max_concurrent_tasks,
                "task_types": list(self.task_types), "sandbox_types": list(self.sandbox_types)}

    def to_ledger(self) -> dict[str, Any]:
        """Integer-only form for signed events: scores in thousandths, sizes in MiB."""
        return {"cpu_milli": round(self.cpu_score * 1000), "ram_mb": round(self.ram_gb * MIB_PER_GB),
                "disk_mb": round(self.disk_gb * MIB_PER_GB), "gpu_milli": round(self.gpu_score * 1000),
                "max_concurrent_tasks": self.max_concurrent_tasks, "task_types": list(self.task_types),
                "sandbox_types": list(self.sandbox_types)}

    @classmethod
    def from_ledger(cls, data: Mapping[str, Any]) -> Capabilities:
        """Parse the integer form another node signed; malformed input raises NodeError."""
        if not isinstance(data, Mapping):
            raise NodeError(f"ledger capabilities must be an object, got {type(data).__name__}")

        def whole(key: str, default: int) -> int:
            v = data.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise NodeError(f"ledger capabilities: {key} must be a non-negative integer, got {v!r}")
            return v

        return cls(cpu_score=whole("cpu_milli", 0) / 1000, ram_gb=whole("ram_mb", 0) / MIB_PER_GB,
                   disk_gb=whole("disk_mb", 0) / MIB_PER_GB, gpu_score=whole("gpu_milli", 0) / 1000,
                   max_concurrent_tasks=whole("max_concurrent_tasks", 0),
                   task_types=list(data.get("task_types", ALL_TASK_TYPES)),
                   sandbox_types=list(data.get("sandbox_types", DEFAULT_SANDBOX_TYPES)))

    @classmethod
    def from_any(cls, value: Capabilities | Mapping[str, Any]) -> Capabilities:
        """A Capabilities from itself, the ledger's integer form or the seed's float form."""
        if isinstance(value, Capabilities):
            return value
        if not isinstance(value, Mapping):
            raise NodeError(f"capabilities must be Capabilities or a dict, got {type(value).__name__}")
        if any(k in value for k in ("cpu_milli", "ram_mb", "disk_mb", "gpu_milli")):
            return cls.from_ledger(value)
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise NodeError(f"unknown capability fields: {', '.join(sorted(unknown))}")
        return cls(**dict(value))

    @classmethod
    def detect(cls, path: str | None = None) -> Capabilities:
        """Measure this machine with psutil: cores, memory, free disk where work files go.

        GPUs are not probed (gpu_score 0). Sandbox types are offered when their mechanism is
        installed (wasmtime for ``wasm``, bubblewrap for ``container``); a chunk that still cannot
        be isolated fails with the sandbox's clear SandboxError, never runs unisolated.
        """
        import importlib.util
        import shutil

        cores = psutil.cpu_count(logical=True) or 1
        memory = psutil.virtual_memory().total / 2**30
        disk = psutil.disk_usage(path or tempfile.gettempdir()).free / 2**30
        sandboxes = ["process_isolation"]
        if importlib.util.find_spec("wasmtime") is not None:
            sandboxes.append("wasm")
        if shutil.which("bwrap"):
            sandboxes.append("container")
        return cls(cpu_score=float(cores), ram_gb=round(memory, 3), disk_gb=round(disk, 3), gpu_score=0.0,
                   max_concurrent_tasks=cores, sandbox_types=sandboxes)


# --------------------------------------------------------------------------- requirements
_REQ_LIMITS: dict[str, tuple[float, float | None, bool]] = {
    # key: (lowest, highest, lowest allowed?)
    "cpu_percent": (0.0, 100.0, True),
    "gpu_percent": (0.0, 100.0, True),
    "ram_gb": (0.0, None, True),
    "disk_gb": (0.0, None, True),
    "timeout_seconds": (0.0, None, False),
}


def validate_requirements(requirements: Any) -> dict[str, Any]:
    """Check a task's requirements for shape; NodeError names what is malformed.

    Unknown keys (``max_price``, ``work_units``, …) are other components' business and pass.
    """
    if not isinstance(requirements, Mapping):
        raise NodeError(f"task requirements must be a dict, got {type(requirements).__name__}")
    req = dict(requirements)
    for key, (lo, hi, lo_ok) in _REQ_LIMITS.items():
        if key not in req or req[key] is None:
            continue
        v = req[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or v < lo or (v == lo and not lo_ok) or (hi is not None and v > hi)):
            rng = f"{'>=' if lo_ok else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise NodeError(f"requirement {key} must be a number {rng}, got {v!r}")
    for key in ("task_type", "sandbox_type"):
        v = req.get(key)
        if isinstance(v, Enum):
            req[key] = v = v.value
        if v is not None and (not isinstance(v, str) or not v):
            raise NodeError(f"requirement {key} must be a non-empty string, got {v!r}")
    return req


def unmet_requirements(capabilities: Capabilities, requirements: Mapping[str, Any], *, active_tasks: int = 0,
                       cpu_used_percent: float | None = None,
                       ram_available_gb: float | None = None) -> list[str]:
    """Why a node with these capabilities cannot take a task now (empty list: it can).

    The live measures are optional so the router can apply the same rules to capabilities read
    from the ledger, where only the static ones are known.
    """
    req = validate_requirements(requirements)
    reasons: list[str] = []
    if active_tasks >= capabilities.max_concurrent_tasks:
        reasons.append(f"busy: {active_tasks} of {capabilities.max_concurrent_tasks} task slots in use")
    cpu = req.get("cpu_percent")
    if cpu and cpu_used_percent is not None and cpu > 100.0 - cpu_used_percent:
        reasons.append(f"cpu: needs {cpu:g}% but only {max(0.0, 100.0 - cpu_used_percent):.1f}% is free")
    ram = req.get("ram_gb")
    if ram:
        if ram > capabilities.ram_gb:
            reasons.append(f"ram: needs {ram:g} GB, node offers {capabilities.ram_gb:g} GB")
        elif ram_available_gb is not None and ram > ram_available_gb:
            reasons.append(f"ram: needs {ram:g} GB, only {ram_available_gb:.2f} GB free now")
    disk = req.get("disk_gb")
    if disk and disk > capabilities.disk_gb:
        reasons.append(f"disk: needs {disk:g} GB, node offers {capabilities.disk_gb:g} GB")
    gpu = req.get("gpu_percent")
    if gpu and capabilities.gpu_score <= 0:
        reasons.append("gpu: task needs a GPU, node has none")
    task_type = req.get("task_type")
    if task_type is not None and task_type not in capabilities.task_types:
        reasons.append(f"task type {task_type!r} not offered")
    sandbox = req.get("sandbox_type")
    if sandbox is not None and sandbox not in capabilities.sandbox_types:
        reasons.append(f"sandbox {sandbox!r} not offered")
    return reasons


# --------------------------------------------------------------------------- load probe
class LoadProbe:
    """Non-blocking CPU/RAM measures from psutil.

    CPU use is the delta of system CPU times since the previous sample (the same figure as
    ``psutil.cpu_percent(interval=None)``, but with its own baseline, so other callers of psutil
    do not shorten our window) and is re-sampled at most every ``min_interval`` seconds. This
    process's own CPU (its event loop, the ledger) is subtracted: the headroom that matters is
    what *other* programs leave; the node's own chunks are bounded by its task slots.
    """

    def __init__(self, min_interval: float = 0.2) -> None:
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._proc = psutil.Process()
        self._cores = psutil.cpu_count(logical=True) or 1
        self._last: tuple[float, float, float] | None = None  # (wall, busy, own)
        self._system_percent = 0.0
        self._external_percent = 0.0

    def _times(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        own = sum(self._proc.cpu_times()[:2])
        return time.monotonic(), busy, own

    def prime(self) -> None:
        """Take the baseline sample (at start), so the first real reading covers a real interval."""
        with self._lock:
            self._last = self._times()

    def cpu(self) -> tuple[float, float]:
        """(system CPU %, CPU % used by other processes), both over all cores, 0..100."""
        with self._lock:
            now = self._times()
            if self._last is None:
                self._last = now
                return self._system_percent, self._external_percent
            wall = now[0] - self._last[0]
            if wall >= self.min_interval:
                capacity = wall * self._cores
                system = min(100.0, max(0.0, 100.0 * (now[1] - self._last[1]) / capacity))
                own = max(0.0, 100.0 * (now[2] - self._last[2]) / capacity)
                self._system_percent, self._external_percent = system, max(0.0, system - own)
                self._last = now
            return self._system_percent, self._external_percent

    def memory(self) -> tuple[float, float]:
        """(RAM % used, GB available)."""
        vm = psutil.virtual_memory()
        return float(vm.percent), vm.available / 2**30


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
