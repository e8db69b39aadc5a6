"""Turn what the kernel reported about a run into a SandboxResult with a readable reason."""

from __future__ import annotations

import signal

from ledger_net.sandbox.limits import SandboxLimits
from ledger_net.sandbox.result import (
    REASON_CPU,
    REASON_FILE_SIZE,
    REASON_MEMORY,
    REASON_OUTPUT,
    REASON_WALL,
    SandboxResult,
    signal_reason,
)
from ledger_net.sandbox.runner import RawOutcome

# What an allocation failure under RLIMIT_AS looks like on stderr for common runtimes.
_MEMORY_MARKERS = (
    "MemoryError",
    "Cannot allocate memory",
    "out of memory",
    "std::bad_alloc",
    "memory allocation of",
    "failed to allocate",
)
# Refusals by the isolation that surface as an ordinary error exit; checked in this order.
_REFUSAL_MARKERS = (
    (("Read-only file system",), "write outside the sandbox dir refused (read-only file system)"),
    (("Network is unreachable",), "network access refused (no network in the sandbox)"),
    (("Connection refused",), "network access refused (no network in the sandbox)"),
    (("fork", "Operation not permitted"), "process creation refused (max_processes limit)"),
    (("spawn", "Operation not permitted"), "process creation refused (max_processes limit)"),
    (("No space left on device",), "disk limit exceeded (max_disk_bytes: the sandbox's dirs are full)"),
    (("can't start new thread",), "thread limit reached (each thread's stack counts against memory_bytes)"),
)
# RLIMIT_CPU's hard limit is one second above the soft one, so allow some slack.
_CPU_SLACK = 0.2


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def failure_reason(raw: RawOutcome, limits: SandboxLimits) -> str:
    """The single most specific reason a run failed, or "" if it did not."""
    cpu = float(raw.usage.get("cpu_seconds", 0.0))
    sig = raw.term_signal
    if raw.output_exceeded:
        return REASON_OUTPUT
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu_time_seconds - _CPU_SLACK):
        return REASON_CPU
    if raw.timed_out:
        return REASON_WALL
    if sig == signal.SIGXFSZ:
        return REASON_FILE_SIZE
    tail = _text(raw.stderr[-4096:])
    if (sig is not None or raw.exit_code not in (0, None)) and any(m in tail for m in _MEMORY_MARKERS):
        return REASON_MEMORY
    if sig is not None:
        return signal_reason(sig)
    if raw.exit_code not in (0, None):
        for markers, reason in _REFUSAL_MARKERS:
            if all(m in tail for m in markers):
                return f"{reason}; exited with code {raw.exit_code}"
        return f"exited with code {raw.exit_code}"
    return ""


def to_result(raw: RawOutcome, limits: SandboxLimits, sandbox: str) -> SandboxResult:
    """Build the public result; usage carries the kernel's figures plus the limits in force."""
    reason = failure_reason(raw, limits)
    usage = dict(raw.usage)
    usage["sandbox"] = sandbox
    usage["limits"] = limits.to_dict()
    if raw.output_exceeded:
        usage["output_truncated"] = True
    exit_code = raw.exit_code if raw.exit_code is not None else (
        -raw.term_signal if raw.term_signal is not None else None
    )
    return SandboxResult(
        stdout=_text(raw.stdout),
        stderr=_text(raw.stderr),
        exit_code=exit_code,
        runtime=raw.runtime,
        timed_out=raw.timed_out or reason in (REASON_CPU, REASON_WALL),
        killed=raw.term_signal is not None or raw.timed_out or raw.output_exceeded,
        usage=usage,
        reason=reason,
    )
