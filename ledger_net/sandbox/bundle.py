"""The code package a sandbox runs: an entrypoint, its source, extra files, stdin and args."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ledger_net.errors import SandboxError


def check_relative_path(name: str) -> str:
    """Normalise a bundle file name, refusing anything that could land outside the private dir."""
    if not isinstance(name, str) or not name:
        raise SandboxError(f"bundle file name must be a non-empty string, got {name!r}")
    if "\0" in name or "\\" in name:
        raise SandboxError(f"bundle file name {name!r} contains a NUL or backslash")
    if name.startswith("/"):
        raise SandboxError(f"bundle file name {name!r} must be relative to the sandbox dir")
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../"):
        raise SandboxError(f"bundle file name {name!r} points outside the sandbox dir")
    return norm


@dataclass
class CodeBundle:
    """What to run. ``source``, when given, is written as the entrypoint file.

    ``files`` values may be ``str`` (written UTF-8) or ``bytes`` (e.g. a compiled ``.wasm``).
    """

    entrypoint: str
    source: str | bytes | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    stdin: str | bytes | None = None
    args: list[str] = field(default_factory=list)

    def validated(self) -> CodeBundle:
        """Check names and types up front so a bad bundle fails before any process starts."""
        entry = check_relative_path(self.entrypoint)
        if not isinstance(self.files, dict):
            raise SandboxError("CodeBundle.files must be a dict of name -> str | bytes")
        files: dict[str, str | bytes] = {}
        for name, content in self.files.items():
            if not isinstance(content, (str, bytes)):
                raise SandboxError(f"bundle file {name!r} must be str or bytes, got {type(content).__name__}")
            files[check_relative_path(name)] = content
        if self.source is not None:
            if not isinstance(self.source, (str, bytes)):
                raise SandboxError("CodeBundle.source must be str or bytes")
            files[entry] = self.source
        if entry not in files:
            raise SandboxError(f"entrypoint {self.entrypoint!r} is neither given as source nor in files")
        if self.stdin is not None and not isinstance(self.stdin, (str, bytes)):
            raise SandboxError("CodeBundle.stdin must be str, bytes or None")
        if not isinstance(self.args, (list, tuple)) or not all(
            isinstance(a, str) and "\0" not in a for a in self.args
        ):
            raise SandboxError("CodeBundle.args must be a list of strings without NUL")
        return CodeBundle(entry, None, files, self.stdin, list(self.args))

    def stdin_bytes(self) -> bytes:
        """stdin as bytes (str is UTF-8 encoded)."""
        if self.stdin is None:
            return b""
        return self.stdin.encode() if isinstance(self.stdin, str) else self.stdin

    def total_bytes(self) -> int:
        """Size of all files, to refuse bundles larger than the file limit allows."""
        return sum(len(c.encode() if isinstance(c, str) else c) for c in self.files.values()) + (
            len(self.source.encode() if isinstance(self.source, str) else self.source)
            if self.source is not None
            else 0
        )
