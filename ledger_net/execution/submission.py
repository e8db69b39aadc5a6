"""Submission: from a `Task` to the `task.submitted` body and the owner's memory of it.

Checks come first and raise (TaskError / CreditError) before anything is decided; the
result is a `Submission` the loop commits: only once `task.submitted` is in the log does the
owner remember the task (`Submission.on_commit`). Operand arrays go to the blob store while
the chunks are planned (content-addressed, so a refused submission leaves only unreferenced
blobs). `restore` rebuilds the same memory from a submitted event when the engine replays
the log after a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..compute import Packer, pack, plan_chunks, unpack, validate_config
from ..compute.checks import verification_spec
from ..compute.plan import payload_work_units
from ..core.money import to_units
from ..core.task import Task
from ..errors import CreditError, InsufficientCredits, LedgerError, TaskError
from ..ledger.events import Event
from .answers import INLINE_LIMIT, local_blobs
from .blobs import BlobStore
from .framing import encode_frame
from .owner import ChunkWork, OwnedTask

log = logging.getLogger(__name__)


SPEC_INLINE_LIMIT = 48 * 1024  # a task.submitted body above this names its config by blob hash
DEFAULT_BUDGET = 1.0  # credits, when a task names no max_price


@dataclass
class Submission:
    """A checked task: the body to sign, the memory to keep once signed, and why it cannot run
    (``refusal``: it is still recorded, then failed with that reason, like any other failure)."""

    body: dict[str, Any]
    owned: OwnedTask
    refusal: str | None

    def on_commit(self, event: Event, owned: dict[str, OwnedTask], quote_window: float) -> None:
        """Remember the task, now that its submission is in the log."""
        self.owned.submitted = event.hash
        self.owned.quote_deadline = time.monotonic() + quote_window
        owned[self.owned.task_id] = self.owned


@dataclass(frozen=True)
class Funds:
    """What the submitter's account allows (read from the ledger's state by the loop)."""

    decimals: int
    spendable: int
    task_ids: frozenset[str]  # ids this owner already submitted


def prepare(task: Task, funds: Funds, blobs: BlobStore) -> Submission:
    """Check ``task`` and plan it: chunks, replicas, quorum, budget per chunk, the event body."""
    errors = task.validate()
    if errors:
        raise TaskError("invalid task: " + "; ".join(errors))
    task_type = str(task.task_type.value if hasattr(task.task_type, "value") else task.task_type)
    config = dict(task.config)
    requirements = dict(task.requirements or {})
    refusal = None
    if task_type in ("ml_inference", "ml_train_step"):
        config, refusal = attach_model(config, blobs)
        problems = validate_config(task_type, config)
        if problems:
            raise TaskError("invalid task: " + "; ".join(problems))
    payloads = [{}] if refusal else plan_chunks(task_type, config, config.get("chunk_size"), checked=True)
    replicas = int(config.get("replicas", 1))
    if not 1 <= replicas <= 16:
        raise TaskError("replicas must be between 1 and 16")
    quorum = int(config.get("quorum", replicas // 2 + 1))
    if not 1 <= quorum <= replicas:
        raise TaskError("quorum must be between 1 and replicas")
    verification = verification_spec(task_type, config)
    budget_value = config.get("max_price", requirements.get("max_price", DEFAULT_BUDGET))
    try:
        budget = to_units(budget_value, funds.decimals, what="max_price")
    except CreditError as exc:
        raise TaskError(str(exc)) from None
    if budget < 0:
        raise TaskError("max_price must not be negative")
    per_chunk = budget // (len(payloads) * replicas)
    if task.task_id in funds.task_ids:
        raise TaskError(f"task {task.task_id} was already submitted")
    if budget > funds.spendable:
        raise InsufficientCredits(f"insufficient credits to escrow the task's max_price {budget_value}: balance is "
                          f"{funds.spendable / 10 ** funds.decimals}")
    # One packer per task: chunks name row runs of the config's arrays, not copies; big
    # arrays are hashed while written to the blob store, side by side.
    packer = Packer(store=blobs.store.put_new_blob)
    wire_config, config_blobs = packer.pack(config)
    blobs.put_many(config_blobs, trusted=True)
    wire_requirements, _ = pack(requirements, min_blob_items=10**9)
    chunks = [chunk_work(index, payload, packer, blobs) for index, payload in enumerate(payloads)]
    timeout = float(requirements.get("timeout_seconds") or 30.0)
    owned = OwnedTask(task.task_id, task_type, wire_config, requirements, int(task.priority or 2), replicas,
                      quorum, per_chunk, timeout, chunks)
    owned.verification = verification
    work_units = max((payload_work_units(task_type, p) for p in payloads), default=1) if not refusal else 1
    owned.work_units = int(work_units)
    body = {"task_id": task.task_id, "task_type": task_type, "escrow": budget, "max_price": per_chunk,
            "chunks": len(payloads), "spec": {"config": wire_config, "requirements": wire_requirements,
                                              "work_units": int(work_units)},
            "priority": min(max(int(task.priority or 2), 0), 10), "replicas": replicas, "quorum": quorum,
            "timeout_ms": max(1, int(timeout * 1000))}
    if config_blobs:
        body["blobs"] = sorted(config_blobs)
    if len(orjson.dumps(body)) > SPEC_INLINE_LIMIT:
        # Too big for one event (events.MAX_EVENT_BYTES): the config travels as a frame
        # blob named by hash. Only the owner reads it back; workers get chunk payloads.
        frame_hash, _ = blobs.put_value(wire_config, {}, trusted=True)
        body["spec"] = {"config_blob": frame_hash, "requirements": wire_requirements,
                        "work_units": int(work_units)}
        body["blobs"] = [frame_hash]
    return Submission(body, owned, refusal)


def chunk_work(index: int, payload: Any, packer: Packer, blobs: BlobStore) -> ChunkWork:
    """A chunk's payload in wire form, naming its big operands by blob hash: inline in the
    assignment when small, else as one small frame blob of its own."""
    wire, chunk_blobs = packer.pack(payload)
    blobs.put_many(chunk_blobs, trusted=True)
    frame = encode_frame({"payload": wire})
    if len(frame) <= INLINE_LIMIT:
        return ChunkWork(index, wire, None)
    return ChunkWork(index, None, blobs.put_frame(frame))


def attach_model(config: dict[str, Any], blobs: BlobStore) -> tuple[dict[str, Any], str | None]:
    """Ship the model file with the task (workers elsewhere cannot read the owner's disk);
    or say why it cannot run."""
    path = config.get("model_path")
    if not path or config.get("model_blob") or config.get("weights"):
        return config, None
    file = Path(path)
    if file.suffix.lower() != ".npz":
        return config, (f"unsupported model format {file.suffix or '(none)'!r} for {path}: "
                        "ledger_net runs numpy .npz models (linear or MLP)")
    if not file.is_file():
        return config, f"model file {path} not found"
    return dict(config, model_blob=blobs.put(file.read_bytes())), None


def restore(event: Event, blobs: BlobStore) -> OwnedTask | None:
    """The owner's memory of its task, rebuilt from its `task.submitted` (after a restart);
    None, with a warning, when its config is no longer at hand."""
    b = event.body
    spec = b["spec"]
    try:
        if "config_blob" in spec:  # a config too big for the event travels as a frame blob
            found, wire, frame_blobs = blobs.local_wire(spec["config_blob"])
            if not found:
                raise TaskError(f"config blob {str(spec['config_blob'])[:16]}… is not available here")
            spec = dict(spec, config=wire)
            config = unpack(wire, frame_blobs, verify=False)
        else:
            config = unpack(spec["config"], local_blobs(blobs, spec["config"]), verify=False)
        payloads = plan_chunks(b["task_type"], config, config.get("chunk_size"))
    except (TaskError, LedgerError) as exc:
        log.warning("cannot resume task %s: %s", b["task_id"], exc)
        return None
    packer = Packer()
    packer.pack(config)  # learn the operands' arrays again, so chunks name their rows
    chunks = [chunk_work(index, payload, packer, blobs) for index, payload in enumerate(payloads)]
    requirements = unpack(spec.get("requirements") or {})
    task = OwnedTask(b["task_id"], b["task_type"], spec["config"], requirements, b.get("priority", 2),
                     b.get("replicas", 1), b.get("quorum", 1), b["max_price"],
                     b.get("timeout_ms", 30000) / 1000.0, chunks, submitted=event.hash)
    if type(spec.get("work_units")) is int:
        task.work_units = spec["work_units"]
    try:
        task.verification = verification_spec(b["task_type"], config)
    except TaskError:
        task.verification = {"mode": "quorum"}
    return task
