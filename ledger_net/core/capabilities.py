"""What a machine offers and whether it can take a task: the seed's ``Capabilities`` (with
their integer ledger form), the checks of a task's requirements against them, and the live
load probe (CPU and RAM from psutil). ``Node`` (core/node.py) is built on these."""

from __future__ import annotations

import dataclasses
import math
import tempfile
import threading
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

import psutil

from ..errors import NodeError

ALL_TASK_TYPES: tuple[str, ...] = ("range_reduce", "map", "map_reduce", "matrix_ops", "ml_inference",
                                   "ml_train_step", "code")
DEFAULT_SANDBOX_TYPES: tuple[str, ...] = ("process_isolation",)
SANDBOX_TYPES: tuple[str, ...] = ("process_isolation", "wasm", "container")
MIB_PER_GB = 1024  # ram_gb / disk_gb are GiB; the ledger keeps MiB
PPM = 1_000_000


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
