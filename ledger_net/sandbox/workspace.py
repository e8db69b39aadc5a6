"""The private directory a run sees as its only writable place, removed when the run ends."""

from __future__ import annotations

import os
import shutil
import tempfile
from types import TracebackType

from ledger_net.errors import SandboxError
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.limits import SandboxLimits


class PrivateDir:
    """A fresh 0700 temp dir holding the bundle; ``with`` guarantees its removal."""

    def __init__(self, prefix: str = "ledger-sbx-", base: str | None = None) -> None:
        self._prefix = prefix
        self._base = base
        self.path = ""

    def __enter__(self) -> PrivateDir:
        try:
            self.path = os.path.realpath(tempfile.mkdtemp(prefix=self._prefix, dir=self._base))
        except OSError as exc:
            raise SandboxError(f"cannot create the sandbox's private temp dir: {exc}") from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Delete the dir and everything the run left in it."""
        if self.path and os.path.lexists(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

    def materialize(self, bundle: CodeBundle, limits: SandboxLimits) -> str:
        """Write the bundle's files; returns the entrypoint's absolute path."""
        if bundle.total_bytes() > limits.max_file_bytes:
            raise SandboxError(
                f"code bundle is {bundle.total_bytes()} bytes, above max_file_bytes={limits.max_file_bytes}"
            )
        for name, content in bundle.files.items():
            target = os.path.join(self.path, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            data = content.encode() if isinstance(content, str) else content
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(target, flags, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        return os.path.join(self.path, bundle.entrypoint)
