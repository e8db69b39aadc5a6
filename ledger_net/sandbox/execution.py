"""The seed's sandbox API: one import point for the types, the executors and the factory.

``from ledger_net.sandbox.execution import CodeBundle, SandboxExecutorFactory, SandboxLimits,
SandboxType`` is what the seed's examples use; the pieces live in sibling modules.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox.base import SandboxExecutor
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.container import ContainerSandboxExecutor
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.process import ProcessSandboxExecutor
from ledger_net.sandbox.result import SandboxResult
from ledger_net.sandbox.wasm import WasmSandboxExecutor


class SandboxExecutorFactory:
    """Maps a SandboxType to its executor; raises SandboxError if the mechanism is missing."""

    _executors: dict[SandboxType, type[SandboxExecutor]] = {
        SandboxType.PROCESS_ISOLATION: ProcessSandboxExecutor,
        SandboxType.WASM: WasmSandboxExecutor,
        SandboxType.CONTAINER: ContainerSandboxExecutor,
    }

    @classmethod
    def create(cls, sandbox_type: SandboxType | str = SandboxType.PROCESS_ISOLATION,
               limits: SandboxLimits | None = None, **options: Any) -> SandboxExecutor:
        """Build an executor; ``options`` go to its constructor (e.g. ``bwrap_path``)."""
        kind = SandboxType.parse(sandbox_type)
        try:
            return cls._executors[kind](limits, **options)
        except TypeError as exc:
            raise SandboxError(f"bad options for the {kind.value} sandbox: {exc}") from exc

    @classmethod
    def available(cls) -> dict[str, str]:
        """Which sandbox kinds can be built here, and why not for the others."""
        report: dict[str, str] = {}
        for kind in cls._executors:
            try:
                cls.create(kind)
                report[kind.value] = "available"
            except SandboxError as exc:
                report[kind.value] = f"unavailable: {exc}"
        return report


class Sandbox:
    """A convenience wrapper around one executor (the seed imports ``Sandbox``)."""

    def __init__(self, sandbox_type: SandboxType | str = SandboxType.PROCESS_ISOLATION,
                 limits: SandboxLimits | None = None, **options: Any) -> None:
        self.executor = SandboxExecutorFactory.create(sandbox_type, limits, **options)
        self.sandbox_type = self.executor.sandbox_type

    async def run(self, code_bundle: CodeBundle, limits: SandboxLimits | None = None,
                  job: Any = None) -> SandboxResult:
        """Execute a bundle with this sandbox's executor."""
        return await self.executor.execute(job, code_bundle, limits)

    async def run_self_test(self) -> dict[str, Any]:
        """Check the isolation on this machine."""
        return await self.executor.run_self_test()

    async def close(self) -> None:
        """Close the executor."""
        await self.executor.close()

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


__all__ = [
    "CodeBundle",
    "ContainerSandboxExecutor",
    "ProcessSandboxExecutor",
    "Sandbox",
    "SandboxError",
    "SandboxExecutor",
    "SandboxExecutorFactory",
    "SandboxLimits",
    "SandboxResult",
    "SandboxType",
    "WasmSandboxExecutor",
]
