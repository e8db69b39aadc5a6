"""The executor interface every sandbox kind implements."""

from __future__ import annotations

import abc
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.result import SandboxResult


class SandboxExecutor(abc.ABC):
    """Runs CodeBundles under limits. One instance may serve many concurrent runs.

    ``job`` is the task/chunk the run belongs to; executors only use it for labels, so ``None``
    (as in the seed example) is fine.
    """

    sandbox_type: SandboxType

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise SandboxError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
        self.limits = limits or SandboxLimits()
        self._closed = False

    def _effective(self, code_bundle: CodeBundle, limits: SandboxLimits | None) -> tuple[CodeBundle, SandboxLimits]:
        """Validate the inputs of one run; limits=None means this executor's own limits."""
        if self._closed:
            raise SandboxError(f"{type(self).__name__} is closed")
        if not isinstance(code_bundle, CodeBundle):
            raise SandboxError(f"code_bundle must be a CodeBundle, got {type(code_bundle).__name__}")
        if limits is not None and not isinstance(limits, SandboxLimits):
            raise SandboxError(f"limits must be a SandboxLimits or None, got {type(limits).__name__}")
        return code_bundle.validated(), (limits or self.limits)

    @abc.abstractmethod
    async def execute(
        self, job: Any, code_bundle: CodeBundle, limits: SandboxLimits | None = None
    ) -> SandboxResult:
        """Run the bundle and report the outcome; raise SandboxError if it cannot be set up."""

    @abc.abstractmethod
    async def run_self_test(self) -> dict[str, Any]:
        """Prove on this machine that the isolation works; raise SandboxError if it does not."""

    async def close(self) -> None:
        """Release what the executor holds; later execute() calls raise SandboxError."""
        self._closed = True
