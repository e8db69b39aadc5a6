"""Resource limits of one sandboxed run and the sandbox kinds that enforce them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from ledger_net.errors import SandboxError

MiB = 1024 * 1024


class SandboxType(str, enum.Enum):  # noqa: UP042 -- StrEnum would change str(member) in logs and messages
    """How user code is isolated; the values are the seed's wire names."""

    PROCESS_ISOLATION = "process_isolation"
    WASM = "wasm"
    CONTAINER = "container"

    @classmethod
    def parse(cls, value: SandboxType | str) -> SandboxType:
        """Accept the enum or its string name, so configs and events can carry plain strings."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise SandboxError(f"unknown sandbox type {value!r}; expected one of: {names}") from None

    @property
    def strength(self) -> int:
        """Order for a node's floor. process_isolation and container share one view (they
        differ in name only, see container.py); wasm has no system calls at all."""
        return {"process_isolation": 1, "container": 1, "wasm": 2}[self.value]


def offered_types(available: list[str], floor: SandboxType | str, wanted: list[str] | None = None) -> list[str]:
    """The sandbox types a node offers: those it can build (and was told to offer), none below its floor."""
    bottom = SandboxType.parse(floor).strength
    names = [SandboxType.parse(t).value for t in (wanted if wanted is not None else available)]
    missing = [t for t in names if t not in available]
    if missing:
        raise SandboxError(f"sandbox type(s) {', '.join(missing)} cannot be built on this machine "
                           f"(available: {', '.join(available)})")
    return [t for t in names if SandboxType.parse(t).strength >= bottom]


def effective_type(requested: SandboxType | str | None, floor: SandboxType | str) -> SandboxType:
    """What a chunk runs under: the type it asked for, or the floor when it asked for none.

    A request weaker than the floor is refused (the node never bids on it; this is the check
    for a chunk that reaches it anyway)."""
    bottom = SandboxType.parse(floor)
    if requested is None or requested == "":
        return bottom
    kind = SandboxType.parse(requested)
    if kind.strength < bottom.strength:
        raise SandboxError(f"sandbox {kind.value!r} is below this node's floor {bottom.value!r}")
    return kind


@dataclass(frozen=True)
class SandboxLimits:
    """Limits applied to one run. Defaults suit a small compute chunk, not a long service.

    ``max_processes`` counts the sandboxed program itself: 1 (the default) means it may start
    threads but no child processes.
    """

    cpu_time_seconds: float = 10.0
    memory_bytes: int = 256 * MiB
    wall_time_seconds: float = 30.0
    max_output_bytes: int = 1 * MiB
    max_file_bytes: int = 64 * MiB
    max_open_files: int = 64
    max_processes: int = 1
    env: dict[str, str] | None = field(default=None)
    # Everything the run may write: its working dir and its /tmp are tmpfs of this size each.
    max_disk_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, kind: type) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
                raise SandboxError(f"SandboxLimits.{name} must be a number, got {value!r}")
            if value <= 0:
                raise SandboxError(f"SandboxLimits.{name} must be positive, got {value!r}")

        positive("cpu_time_seconds", self.cpu_time_seconds, float)
        positive("wall_time_seconds", self.wall_time_seconds, float)
        positive("memory_bytes", self.memory_bytes, int)
        positive("max_output_bytes", self.max_output_bytes, int)
        positive("max_file_bytes", self.max_file_bytes, int)
        positive("max_open_files", self.max_open_files, int)
        positive("max_processes", self.max_processes, int)
        positive("max_disk_bytes", self.max_disk_bytes, int)
        if self.memory_bytes < 16 * MiB:
            raise SandboxError("SandboxLimits.memory_bytes below 16 MiB cannot start any runtime")
        if self.max_open_files < 8:
            raise SandboxError("SandboxLimits.max_open_files must allow at least 8 descriptors")
        if self.env is not None and (not isinstance(self.env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in k + v
            for k, v in self.env.items()
        )):
            raise SandboxError("SandboxLimits.env must map non-empty names without '=' to strings")

    def with_changes(self, **changes: Any) -> SandboxLimits:
        """A copy with some limits changed (validated like a new instance)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain form for logs, events and usage reports."""
        return {
            "cpu_time_seconds": self.cpu_time_seconds,
            "memory_bytes": self.memory_bytes,
            "wall_time_seconds": self.wall_time_seconds,
            "max_output_bytes": self.max_output_bytes,
            "max_file_bytes": self.max_file_bytes,
            "max_open_files": self.max_open_files,
            "max_processes": self.max_processes,
            "env": dict(self.env) if self.env else None,
            "max_disk_bytes": self.max_disk_bytes,
        }
