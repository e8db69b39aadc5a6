"""The outcome of one sandboxed run, with a readable reason when it failed."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

REASON_CPU = "cpu time limit exceeded"
REASON_MEMORY = "memory limit exceeded"
REASON_WALL = "wall time limit exceeded"
REASON_OUTPUT = "output limit exceeded"
REASON_FILE_SIZE = "file size limit exceeded"


def signal_reason(signum: int) -> str:
    """Readable text for death by a signal, e.g. ``killed by signal 9 (SIGKILL)``."""
    try:
        name = signal.Signals(signum).name
        return f"killed by signal {signum} ({name})"
    except ValueError:
        return f"killed by signal {signum}"


@dataclass
class SandboxResult:
    """What a run produced. ``success`` is true only for exit code 0 with no limit hit.

    ``reason`` is empty on success and otherwise says why the run failed, so a worker can put it
    into a chunk-result event without parsing stderr.
    """

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    runtime: float = 0.0
    timed_out: bool = False
    killed: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @property
    def success(self) -> bool:
        """True when the program exited 0 and no limit or kill ended it."""
        return self.exit_code == 0 and not self.timed_out and not self.killed and not self.reason

    def to_dict(self) -> dict[str, Any]:
        """Plain form for events and the HTTP API."""
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "runtime": self.runtime,
            "timed_out": self.timed_out,
            "killed": self.killed,
            "usage": dict(self.usage),
            "reason": self.reason,
            "success": self.success,
        }
