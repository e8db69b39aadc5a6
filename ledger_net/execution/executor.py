"""Runs chunks in sandboxes: built-in types on warm sandboxed workers, user code in
the sandbox type the task asks for. Every chunk runs isolated; failures come back
as readable reasons, never as exceptions that stop the node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..blob_names import is_blob_name
from ..compute import blob_hash, blob_refs, rename_refs
from ..errors import LedgerNetError, SandboxError
from ..sandbox import view
from ..sandbox.bundle import CodeBundle
from ..sandbox.execution import SandboxExecutorFactory
from ..sandbox.limits import SandboxLimits, SandboxType, effective_type
from ..sandbox.warm_pool import WarmWorkerPool
from .blobs import FileBlob
from .chunk_job import is_unnamed
from .framing import decode_frame, encode_frame

log = logging.getLogger(__name__)

CHUNK_FUNCTION = "ledger_net.execution.chunk_job:run_chunk_job"
MiB = 1024 * 1024


@dataclass
class ChunkOutcome:
    ok: bool
    result: Any = None  # wire form (float-free), when ok
    blobs: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # integers only: they go into signed events


class ChunkExecutor:
    """One node's sandboxed execution capacity."""

    def __init__(self, *, workers: int = 2, memory_bytes: int = 1024 * MiB, default_timeout: float = 60.0,
                 work_dir: str | os.PathLike[str] | None = None,
                 sandbox_floor: SandboxType | str = SandboxType.PROCESS_ISOLATION) -> None:
        self.workers = workers
        self.sandbox_floor = SandboxType.parse(sandbox_floor)
        # Workers' private dirs and the results they leave live here; on the node's file
        # system, a result file moves into the blob store by rename.
        self._own_work_dir = work_dir is None
        # Absolute: the sandboxes bind it by path, and a node may be given a relative data dir.
        self.work_dir = (Path(work_dir).absolute() if work_dir is not None
                         else Path(tempfile.mkdtemp(prefix="ledger-work-")))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.staging = self.work_dir / "results"
        self.staging.mkdir(exist_ok=True)
        # Operand files reach a worker as hard links in this dir, bound read-only into its view
        # at view.INPUT_DIR: it sees the blobs of its job, never the node's blob store.
        self.inputs = self.work_dir / "input"
        self.inputs.mkdir(exist_ok=True)
        self.inputs.chmod(0o755)
        self._input_refs: dict[str, int] = {}
        self.default_timeout = default_timeout
        self.limits = SandboxLimits(cpu_time_seconds=max(default_timeout, 5.0), wall_time_seconds=default_timeout,
                                    memory_bytes=memory_bytes, max_output_bytes=512 * MiB,
                                    max_file_bytes=64 * MiB, max_processes=1, env=blas_threads_env(workers))
        self._pool: WarmWorkerPool | None = None
        self.stats = {"chunks": 0, "failed": 0}
        self.failures: dict[str, int] = {}

    async def start(self) -> None:
        if self._pool is None:
            self._pool = WarmWorkerPool({"chunk": CHUNK_FUNCTION}, size=self.workers, limits=self.limits,
                                        lifetime_cpu_seconds=max(3600.0, self.limits.cpu_time_seconds),
                                        temp_root=str(self.work_dir), input_dir=str(self.inputs))
            await self._pool.start()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    async def run(self, task_type: str, payload: Any, blobs: Mapping[str, Any],
                  requirements: Mapping[str, Any] | None = None,
                  files: Mapping[str, str] | None = None) -> ChunkOutcome:
        """Run one chunk. ``blobs`` travel in the job frame; ``files`` (hash -> path of a blob
        file the node checked) are memory-mapped by the worker instead of copied to it."""
        requirements = requirements or {}
        timeout = float(requirements.get("timeout_seconds") or self.default_timeout)
        started = time.perf_counter()
        try:
            if task_type == "code":
                outcome = await self._run_code(payload, requirements, timeout)
            else:
                outcome = await self._run_builtin(task_type, payload, blobs, timeout, files or {})
        except LedgerNetError as exc:
            outcome = ChunkOutcome(False, error=str(exc))
        except Exception as exc:  # a chunk must never take the node down
            log.exception("chunk execution failed unexpectedly")
            outcome = ChunkOutcome(False, error=f"{type(exc).__name__}: {exc}")
        outcome.usage.setdefault("wall_ms", int((time.perf_counter() - started) * 1000))
        self.stats["chunks"] += 1
        if not outcome.ok:
            self.stats["failed"] += 1
            key = _failure_kind(outcome.error or "")
            self.failures[key] = self.failures.get(key, 0) + 1
        return outcome

    async def _run_builtin(self, task_type: str, payload: Any, blobs: Mapping[str, Any],
                           timeout: float, files: Mapping[str, str]) -> ChunkOutcome:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        inside: dict[str, str] = {}
        try:
            for hash_, path in files.items():  # each link undone in `finally`, even if a later one fails
                inside[hash_] = self._link_input(hash_, path)
            frame = encode_frame({"task_type": task_type, "payload": payload, "files": inside}, blobs)
            reply, private_dir = await self._pool.run_in_dir("chunk", frame, timeout=timeout)
            header, result_blobs = decode_frame(reply)
            files = header.get("files") or {}
            if not isinstance(files, dict):
                raise SandboxError("the worker's result names its files wrongly")
            for ref, name in files.items():  # before any await: see run_in_dir
                if ref != name and is_unnamed(name):
                    raise SandboxError(f"the worker named a result file {str(name)[:80]!r} for {str(ref)[:80]!r}")
                result_blobs[ref] = self._take(private_dir, name)
        except SandboxError as exc:
            return ChunkOutcome(False, error=str(exc))
        finally:
            for hash_ in inside:
                self._unlink_input(hash_)
        result = header["result"]
        unnamed = [ref for ref in result_blobs if is_unnamed(ref)]
        if unnamed:  # the node names what the worker left unnamed: one hash of each, off the loop
            names = dict(zip(unnamed, await asyncio.to_thread(_name_files, [result_blobs[r] for r in unnamed]),
                             strict=True))
            result = rename_refs(result, names)
            result_blobs = {names.get(ref, ref): blob for ref, blob in result_blobs.items()}
        if any(is_unnamed(ref) for ref in blob_refs(result)):
            for blob in result_blobs.values():
                if isinstance(blob, FileBlob):
                    blob.discard()
            return ChunkOutcome(False, error="the worker's result names a result file it did not leave")
        return ChunkOutcome(True, result=result, blobs=result_blobs)

    def _link_input(self, hash_: str, path: str) -> str:
        """Show one checked blob file to the workers; returns its path inside their view."""
        if not is_blob_name(hash_):
            raise SandboxError(f"operand file name {hash_[:80]!r} is not a blob hash")
        target = self.inputs / hash_
        if self._input_refs.get(hash_, 0) == 0:
            try:
                os.link(path, target)
            except FileExistsError:
                pass
            except OSError:  # another file system: a copy, once per blob in use
                shutil.copyfile(path, target)
        self._input_refs[hash_] = self._input_refs.get(hash_, 0) + 1
        return f"{view.INPUT_DIR}/{hash_}"

    def _unlink_input(self, hash_: str) -> None:
        left = self._input_refs.get(hash_, 1) - 1
        if left > 0:
            self._input_refs[hash_] = left
            return
        self._input_refs.pop(hash_, None)
        with contextlib.suppress(FileNotFoundError):
            (self.inputs / hash_).unlink()

    def _take(self, private_dir: str, name: Any) -> FileBlob:
        """Move a result file out of a worker's dir (only a plain file named by a hash, or left
        unnamed for the node to name: ``chunk_job.is_unnamed``)."""
        if not (is_blob_name(name) or is_unnamed(name)):
            raise SandboxError(f"the worker named a result file {str(name)[:80]!r}, which is not a blob hash")
        source = Path(private_dir) / name
        if source.is_symlink() or not source.is_file():
            raise SandboxError(f"the worker's result file {name[:16]}… is missing or not a plain file")
        target = self.staging / f"{name}.{uuid.uuid4().hex}"
        try:
            os.replace(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return FileBlob(target)

    async def _run_code(self, payload: Any, requirements: Mapping[str, Any], timeout: float) -> ChunkOutcome:
        bundle_data = dict(payload.get("bundle") or {})
        files = {}
        for name, content in (bundle_data.get("files") or {}).items():
            if isinstance(content, dict) and "$bytes" in content:
                import base64

                content = base64.b64decode(content["$bytes"])
            files[name] = content
        bundle = CodeBundle(entrypoint=bundle_data.get("entrypoint", ""), source=bundle_data.get("source"),
                            files=files, stdin=bundle_data.get("stdin"), args=list(bundle_data.get("args") or []))
        kind = effective_type(requirements.get("sandbox_type"), self.sandbox_floor)
        memory = int(float(requirements.get("ram_gb") or 0.25) * 1024 * MiB)
        limits = SandboxLimits(cpu_time_seconds=timeout, wall_time_seconds=timeout,
                               memory_bytes=max(memory, 64 * MiB))
        executor = SandboxExecutorFactory.create(kind, limits)
        try:
            result = await executor.execute(None, bundle, limits)
        finally:
            await executor.close()
        usage = {"wall_ms": int(result.runtime * 1000), "exit_code": int(result.exit_code if result.exit_code
                                                                          is not None else -1)}
        if not result.success:
            reason = getattr(result, "reason", None) or f"exit code {result.exit_code}"
            return ChunkOutcome(False, error=f"{reason}: {result.stderr[-500:]}".strip(), usage=usage)
        return ChunkOutcome(True, result={"stdout": result.stdout, "stderr": result.stderr,
                                          "exit_code": result.exit_code}, usage=usage)


def _name_files(blobs: list[FileBlob]) -> list[str]:
    """Hash result files the worker left unnamed; each is marked as named by this node, so the
    blob store keeps it without hashing it again."""
    names = []
    for blob in blobs:
        blob.checked = blob_hash(blob)
        names.append(blob.checked)
    return names


def blas_threads_env(workers: int) -> dict[str, str]:
    """BLAS threads per sandboxed worker: the node's own setting if it has one, else the
    cores shared out between the workers (two workers with a thread per core each would
    fight over the cores and both slow down)."""
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") \
        or str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return {name: threads for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def _failure_kind(error: str) -> str:
    lowered = error.lower()
    for kind in ("cpu time", "memory", "wall time", "output", "signal", "network", "unsupported", "not found"):
        if kind in lowered:
            return kind.replace(" ", "_")
    return "error"
