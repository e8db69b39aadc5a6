"""The seed's ``Task`` API: what a user asks the network to compute.

A task is a type, an owner, resource requirements and a config holding the type's
parameters (see :mod:`ledger_net.compute.plan` for the keys of each type). It can
check itself (:meth:`Task.validate`), split itself into chunks, estimate its price
and fold chunk results into its answer; the actual arithmetic lives in
:mod:`ledger_net.compute`, so workers and auditors run exactly the same code.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Mapping
from enum import Enum, IntEnum, StrEnum
from typing import Any

import numpy as np

from ..compute import aggregate, payload_work_units, plan_chunks, run_chunk, validate_config
from ..errors import TaskError
from ..projections.status import TaskStatus


class TaskType(StrEnum):
    RANGE_REDUCE = "range_reduce"
    MAP = "map"
    MAP_REDUCE = "map_reduce"
    MATRIX_OPS = "matrix_ops"
    ML_INFERENCE = "ml_inference"
    ML_TRAIN_STEP = "ml_train_step"
    CODE = "code"


class TaskPriority(IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4


# Pricing of estimate_cost, in micro-credits (1 credit = COST_SCALE), all integers.
COST_SCALE = 1_000_000
CHUNK_FEE_MICROS = 1_000          # 0.001 credit per chunk: scheduling, events, verification
UNITS_PER_MICRO = 1_000           # 1 micro-credit per thousand work units
PRIORITY_FACTOR_PPM = {TaskPriority.LOW: 800_000, TaskPriority.NORMAL: 1_000_000,
                       TaskPriority.HIGH: 1_500_000, TaskPriority.CRITICAL: 2_500_000}

# Parameters a hand-written task dict may give at top level instead of inside config.
_PARAMETER_KEYS = ("start", "end", "operation", "data", "map_operation", "reduce_operation", "matrix_a",
                   "matrix_b", "model_path", "model_blob", "weights", "input_data", "training_data",
                   "learning_rate", "loss", "bundle")


def coerce_task_type(value: Any) -> TaskType:
    """A TaskType from an enum member or its string value; TaskError otherwise."""
    try:
        return TaskType(value.value if isinstance(value, TaskType) else str(value).lower())
    except ValueError:
        raise TaskError(f"unknown task type {value!r}; known: {', '.join(t.value for t in TaskType)}") from None


def coerce_priority(value: Any) -> TaskPriority:
    """A TaskPriority from a member, its int value or its name; TaskError otherwise."""
    if isinstance(value, TaskPriority):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return TaskPriority(value)
        except ValueError:
            pass
    if isinstance(value, str) and value.upper() in TaskPriority.__members__:
        return TaskPriority[value.upper()]
    raise TaskError(f"bad priority {value!r}; use one of "
                    + ", ".join(f"{p.name}={p.value}" for p in TaskPriority))


def _plain(value: Any, keep_arrays: bool = False) -> Any:
    """Lists instead of tuples, plain values instead of enum members and numpy scalars: JSON-like
    configs. Numeric numpy arrays stay arrays where ``keep_arrays`` (matrix operands: turning
    a 2048x2048 matrix into Python lists would cost far more than multiplying it)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, np.ndarray):
        return value if keep_arrays and value.dtype.kind in "biuf" else value.tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, keep_arrays) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Equality of JSON-like values that may hold numpy arrays."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype \
            and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
    return type(a) is type(b) and a == b if isinstance(a, (int, float)) else a == b


@dataclasses.dataclass
class Chunk:
    """One unit of work: a JSON-like payload that :func:`ledger_net.compute.run_chunk` executes."""

    chunk_id: str
    task_id: str
    index: int
    payload: dict[str, Any]
    requirements: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chunk:
        try:
            return cls(str(data["chunk_id"]), str(data["task_id"]), int(data["index"]),
                       dict(data["payload"]), dict(data.get("requirements") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise TaskError(f"malformed chunk: {exc}") from None


class Task:
    """A unit of work a user submits; see the module docstring."""

    def __init__(
        self,
        task_id: str | None,
        owner_id: str,
        task_type: TaskType | str,
        requirements: dict[str, Any],
        config: dict[str, Any],
        priority: TaskPriority | int | str | None = TaskPriority.NORMAL,
    ) -> None:
        self.task_id: str = task_id or f"task-{uuid.uuid4().hex}"
        self.owner_id = owner_id
        self.task_type: TaskType = coerce_task_type(task_type)
        self.requirements: dict[str, Any] = _plain(dict(requirements or {}))
        self.config: dict[str, Any] = _plain(dict(config or {}), keep_arrays=self.task_type == TaskType.MATRIX_OPS)
        # The seed's default is NORMAL; a priority in the config wins over that default only.
        if priority is None or (priority is TaskPriority.NORMAL and "priority" in self.config):
            priority = self.config.get("priority", TaskPriority.NORMAL)
        raw = priority
        try:
            self.priority: TaskPriority | Any = coerce_priority(raw)
        except TaskError:
            self.priority = raw  # kept as given so validate() can name it
        self.status: TaskStatus = TaskStatus.PENDING
        self._chunks: list[Chunk] | None = None

    # ---- creation ----------------------------------------------------------------------

    @staticmethod
    def _create(owner_id: str, task_type: TaskType, params: dict[str, Any],
                requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        return Task(None, owner_id, task_type, requirements, {**(config or {}), **params})

    @staticmethod
    def create_range_reduce(owner_id: str, start: int, end: int, operation: str,
                            requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """Reduce the inclusive integer range start..end (sum, product, mean, variance, ...)."""
        return Task._create(owner_id, TaskType.RANGE_REDUCE,
                            {"start": start, "end": end, "operation": operation}, requirements, config)

    @staticmethod
    def create_map(owner_id: str, data: list[Any], operation: str,
                   requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """Apply ``operation`` to each element of ``data`` (numbers, vectors or matrices)."""
        return Task._create(owner_id, TaskType.MAP, {"data": data, "operation": operation}, requirements, config)

    @staticmethod
    def create_map_reduce(owner_id: str, data: list[Any], map_operation: str, reduce_operation: str,
                          requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """Map every element, then reduce the mapped values to one answer."""
        return Task._create(owner_id, TaskType.MAP_REDUCE, {
            "data": data, "map_operation": map_operation, "reduce_operation": reduce_operation},
            requirements, config)

    @staticmethod
    def create_matrix_ops(owner_id: str, matrix_a: list[list[float]], matrix_b: list[list[float]] | None,
                          operation: str, requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """A matrix operation; ``matrix_b`` may be None for unary ops (transpose, inverse, ...)."""
        return Task._create(owner_id, TaskType.MATRIX_OPS, {
            "matrix_a": matrix_a, "matrix_b": matrix_b, "operation": operation}, requirements, config)

    @staticmethod
    def create_ml_inference(owner_id: str, model_path: str, input_data: Any,
                            requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """Run a numpy .npz model on ``input_data`` (rows, ``{"inputs": rows}`` or base64 floats)."""
        return Task._create(owner_id, TaskType.ML_INFERENCE,
                            {"model_path": model_path, "input_data": input_data}, requirements, config)

    @staticmethod
    def create_ml_train_step(owner_id: str, model_path: str, training_data: Any,
                             requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """One data-parallel SGD step on ``{"X": rows, "y": targets}`` (or an (X, y) pair)."""
        if isinstance(training_data, (tuple, list)) and len(training_data) == 2:
            training_data = {"X": training_data[0], "y": training_data[1]}
        return Task._create(owner_id, TaskType.ML_TRAIN_STEP,
                            {"model_path": model_path, "training_data": training_data}, requirements, config)

    @staticmethod
    def create_code(owner_id: str, bundle: Any, requirements: dict[str, Any], config: dict[str, Any]) -> Task:
        """User code (a CodeBundle or its dict) to be run by a sandbox executor."""
        if dataclasses.is_dataclass(bundle) and not isinstance(bundle, type):
            bundle = dataclasses.asdict(bundle)
        elif hasattr(bundle, "to_dict"):
            bundle = bundle.to_dict()
        return Task._create(owner_id, TaskType.CODE, {"bundle": bundle}, requirements, config)

    # ---- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON-like dict (what ``ComputeNetwork.submit_task`` takes)."""
        priority = self.priority.value if isinstance(self.priority, TaskPriority) else self.priority
        return {"task_id": self.task_id, "owner_id": self.owner_id, "task_type": self.task_type.value,
                "priority": priority, "status": self.status.value,
                "requirements": dict(self.requirements), "config": dict(self.config)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Inverse of :meth:`to_dict`; also takes hand-written dicts (parameters in config or top level)."""
        if not isinstance(data, Mapping):
            raise TaskError(f"a task must be a mapping, got {type(data).__name__}")
        task_type = data.get("task_type", data.get("type"))
        if task_type is None:
            raise TaskError("task has no task_type")
        if not isinstance(data.get("config") or {}, Mapping):
            raise TaskError(f"task config must be a mapping, got {type(data.get('config')).__name__}")
        config = dict(data.get("config") or {})
        for key in _PARAMETER_KEYS:
            if key in data and key not in config:
                config[key] = data[key]
        if not isinstance(data.get("requirements", {}), Mapping):
            raise TaskError("task requirements must be a mapping")
        task = cls(data.get("task_id"), data.get("owner_id", ""), task_type,
                   dict(data.get("requirements") or {}), config, data.get("priority"))
        if data.get("status") is not None:
            try:
                task.status = TaskStatus(str(data["status"]).lower())
            except ValueError:
                raise TaskError(f"unknown task status {data['status']!r}") from None
        return task

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and _same(self.to_dict(), other.to_dict())

    def __hash__(self) -> int:
        return hash(self.task_id)

    def __repr__(self) -> str:
        return f"Task({self.task_id!r}, {self.task_type.value}, owner={self.owner_id!r}, status={self.status.value})"

    # ---- checks and price --------------------------------------------------------------

    @property
    def max_price(self) -> float | None:
        """The owner's price ceiling, from requirements or config (the seed uses both)."""
        return self.requirements.get("max_price", self.config.get("max_price"))

    def validate(self) -> list[str]:
        """Every reason this task cannot run, as readable strings (empty when it is valid)."""
        errors: list[str] = []
        if not isinstance(self.owner_id, str) or not self.owner_id.strip():
            errors.append("owner_id is missing")
        if not isinstance(self.priority, TaskPriority):
            try:
                coerce_priority(self.priority)
            except TaskError as exc:
                errors.append(str(exc))
        errors.extend(self._requirement_errors())
        chunk_size = self.config.get("chunk_size")
        if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                       or chunk_size < 1):
            errors.append(f"chunk_size must be a positive integer, got {chunk_size!r}")
        errors.extend(validate_config(self.task_type.value, self.config))
        return errors

    def _requirement_errors(self) -> list[str]:
        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        errors = []
        r = self.requirements
        limits = {"timeout_seconds": (0, None, False), "cpu_percent": (0, 100, False),
                  "gpu_percent": (0, 100, True), "ram_gb": (0, None, True), "disk_gb": (0, None, True)}
        for key, (lo, hi, zero_ok) in limits.items():
            if key not in r:
                continue
            v = r[key]
            if not number(v) or v < lo or (v == lo and not zero_ok) or (hi is not None and v > hi):
                rng = f"{'>=' if zero_ok else '>'} {lo}" + (f" and <= {hi}" if hi is not None else "")
                errors.append(f"requirements.{key} must be a number {rng}, got {v!r}")
        for where, holder in (("requirements", r), ("config", self.config)):
            if "max_price" in holder and (not number(holder["max_price"]) or holder["max_price"] < 0):
                errors.append(f"{where}.max_price must be a non-negative number, got {holder['max_price']!r}")
        return errors

    def _planned(self, chunk_size: int | None) -> list[dict[str, Any]]:
        return plan_chunks(self.task_type.value, self.config, chunk_size or self.config.get("chunk_size"))

    def work_units(self, chunk_size: int | None = None) -> int:
        """Deterministic size of the whole task (roughly arithmetic operations)."""
        return sum(payload_work_units(self.task_type.value, p) for p in self._planned(chunk_size))

    def estimate_cost_micros(self, node_reputation: float) -> int:
        """:meth:`estimate_cost` in integer micro-credits (1 credit = 1_000_000)."""
        if not isinstance(node_reputation, (int, float)) or not math.isfinite(node_reputation):
            raise TaskError(f"node_reputation must be a number in [0, 1], got {node_reputation!r}")
        priority = self.priority if isinstance(self.priority, TaskPriority) else coerce_priority(self.priority)
        payloads = self._planned(None)
        units = sum(payload_work_units(self.task_type.value, p) for p in payloads)
        base = CHUNK_FEE_MICROS * len(payloads) + -(-units // UNITS_PER_MICRO)
        reputation_ppm = 500_000 + round(min(1.0, max(0.0, float(node_reputation))) * 1_000_000)
        return base * PRIORITY_FACTOR_PPM[priority] * reputation_ppm // 10**12

    def estimate_cost(self, node_reputation: float) -> float:
        """Price estimate in credits: per-chunk fee plus work size, times priority, times reputation.

        A worker's reputation (0..1) scales its price from 0.5x to 1.5x: trusted work costs more.
        """
        return self.estimate_cost_micros(node_reputation) / COST_SCALE

    # ---- chunks ------------------------------------------------------------------------

    def create_chunks(self, chunk_size: int | None = 100) -> list[Chunk]:
        """Split the task into chunks of ``chunk_size`` elements, rows or samples: the seed's
        default is 100. A ``chunk_size`` in the task's config wins over that default (not over a
        size passed explicitly other than 100); ``None`` means the config's or the type's own
        default, which is how the network plans a submitted task."""
        if chunk_size == 100 and self.config.get("chunk_size") is not None:
            chunk_size = None
        payloads = self._planned(chunk_size)
        chunks = []
        for i, payload in enumerate(payloads):
            req = dict(self.requirements)
            req["work_units"] = payload_work_units(self.task_type.value, payload)
            chunks.append(Chunk(f"{self.task_id}:{i}", self.task_id, i, payload, req))
        self._chunks = chunks
        return chunks

    def get_chunk_requirements(self, chunk_id: str) -> dict[str, Any]:
        """Resources one chunk needs: the task's requirements plus the chunk's work size."""
        chunks = self._chunks if self._chunks is not None else self.create_chunks()
        for chunk in chunks:
            if chunk.chunk_id == chunk_id:
                return dict(chunk.requirements)
        raise TaskError(f"task {self.task_id} has no chunk {chunk_id!r}")

    def aggregate_results(self, chunk_results: Any, blobs: Mapping[str, bytes] | None = None) -> Any:
        """The task's answer from its chunk results, given in chunk order (or as index -> result)."""
        return aggregate(self.task_type.value, self.config, chunk_results, blobs)

    def run_locally(self, chunk_size: int | None = None) -> Any:
        """Run every chunk in this process and aggregate: the reference answer, no network."""
        chunks = self.create_chunks(chunk_size)
        return self.aggregate_results([run_chunk(self.task_type.value, c.payload) for c in chunks])


__all__ = ["Chunk", "Task", "TaskPriority", "TaskStatus", "TaskType", "coerce_priority", "coerce_task_type"]
