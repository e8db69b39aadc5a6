"""What a task's config means per type: validation, chunk payloads, work size.

The config keys of each type (what ``Task.create_*`` writes and ``run_chunk`` reads):

============== =========================================================================
range_reduce   start, end (inclusive ints), operation
map            data (list), operation
map_reduce     data (list), map_operation, reduce_operation
matrix_ops     matrix_a, matrix_b (None for unary ops), operation
ml_inference   model_path | model_blob | weights, input_data, return_probabilities
ml_train_step  model_path | model_blob | weights, training_data {X, y}, learning_rate, loss
code           bundle (a CodeBundle as a dict), run by a sandbox executor, not here
============== =========================================================================

A payload is a plain JSON-like dict; ``wire.pack`` makes it float-free for the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import TaskError
from .matrices import SINGLE_CHUNK, matrix_name, split_matrix_op, validate_matrices
from .operations import map_name
from .ranges import check_product_size, check_range
from .reductions import flatten, reduce_name

TASK_TYPES = ("range_reduce", "map", "map_reduce", "matrix_ops", "ml_inference", "ml_train_step", "code")
MAX_CHUNKS = 10_000
DEFAULT_CHUNK_SIZE = {"range_reduce": 1_000_000, "map": 1000, "map_reduce": 1000, "matrix_ops": 100,
                      "ml_inference": 256, "ml_train_step": 256, "code": 1}
MODEL_KEYS = ("model_path", "model_blob", "weights", "model_dir")


def _errors(*checks: Callable[[], Any]) -> list[str]:
    out = []
    for check in checks:
        try:
            check()
        except TaskError as exc:
            out.append(str(exc))
    return out


def _need_list(config: Mapping[str, Any], key: str) -> None:
    if not isinstance(config.get(key), (list, tuple)):
        raise TaskError(f"{key} must be a list, got {type(config.get(key)).__name__}")
    if not config[key]:
        raise TaskError(f"{key} is empty")


def model_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``config`` that say where the model comes from."""
    return {k: config[k] for k in MODEL_KEYS if config.get(k) is not None}


def _need_model(config: Mapping[str, Any]) -> None:
    spec = model_spec(config)
    if not any(k in spec for k in ("model_path", "model_blob", "weights")):
        raise TaskError("missing model: give model_path (a .npz file), model_blob or weights")
    if "model_path" in spec and (not isinstance(spec["model_path"], str) or not spec["model_path"].strip()):
        raise TaskError("model_path must be a non-empty string")


def _need_training_data(config: Mapping[str, Any]) -> None:
    data = config.get("training_data")
    if not isinstance(data, Mapping) or "X" not in data or "y" not in data:
        raise TaskError("training_data must be {'X': rows, 'y': targets}")
    if not isinstance(data["X"], (list, tuple)) or not data["X"]:
        raise TaskError("training_data.X must be a non-empty list of rows")
    if not isinstance(data["y"], (list, tuple)) or len(data["y"]) != len(data["X"]):
        raise TaskError(f"training_data.y must be a list with one target per row of X ({len(data['X'])})")
    lr = config.get("learning_rate", 0.1)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not (0 < lr < math.inf):
        raise TaskError(f"learning_rate must be a positive number, got {lr!r}")


def validate_config(task_type: str, config: Mapping[str, Any]) -> list[str]:
    """Readable reasons why this config cannot run (empty list when it can)."""
    c = config
    if task_type == "range_reduce":
        errs = _errors(lambda: reduce_name(c.get("operation")), lambda: check_range(c.get("start"), c.get("end")))
        if not errs and reduce_name(c["operation"]) == "product":
            errs = _errors(lambda: check_product_size(c["start"], c["end"]))
        return errs
    if task_type == "map":
        return _errors(lambda: map_name(c.get("operation")), lambda: _need_list(c, "data"))
    if task_type == "map_reduce":
        return _errors(lambda: map_name(c.get("map_operation")), lambda: reduce_name(c.get("reduce_operation")),
                       lambda: _need_list(c, "data"))
    if task_type == "matrix_ops":
        return validate_matrices(c.get("operation"), c.get("matrix_a"), c.get("matrix_b"))
    if task_type == "ml_inference":
        errs = _errors(lambda: _need_model(c))
        if c.get("input_data") is None:
            errs.append("input_data is missing")
        return errs
    if task_type == "ml_train_step":
        return _errors(lambda: _need_model(c), lambda: _need_training_data(c))
    if task_type == "code":
        bundle = c.get("bundle")
        if not isinstance(bundle, Mapping) or not bundle.get("entrypoint"):
            return ["code tasks need config['bundle'] with at least an 'entrypoint'"]
        return []
    return [f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}"]


def effective_chunk_size(task_type: str, items: int, chunk_size: int | None) -> int:
    """The chunk size used: as asked (or the type's default), grown so chunks stay <= MAX_CHUNKS."""
    size = int(chunk_size) if chunk_size else DEFAULT_CHUNK_SIZE.get(task_type, 100)
    if size < 1:
        raise TaskError(f"chunk_size must be at least 1, got {chunk_size}")
    return max(size, -(-items // MAX_CHUNKS))


def _slices(items: int, size: int) -> list[range]:
    return [range(i, min(i + size, items)) for i in range(0, items, size)] or [range(0, 0)]


def plan_chunks(task_type: str, config: Mapping[str, Any], chunk_size: int | None = None, *,
                checked: bool = False) -> list[dict[str, Any]]:
    """The payload of every chunk, in order. Raises TaskError when the config is invalid
    (``checked=True``: the caller has just validated it; big operands are not walked twice)."""
    errors = [] if checked else validate_config(task_type, config)
    if errors:
        raise TaskError("; ".join(errors))
    c = config
    if task_type == "range_reduce":
        start, end = c["start"], c["end"]
        if reduce_name(c["operation"]) == "product" and start <= 0 <= end:
            return [{"start": start, "end": end, "operation": c["operation"]}]  # zero factor: answer 0, O(1)
        size = effective_chunk_size(task_type, end - start + 1, chunk_size)
        return [{"start": s, "end": min(s + size - 1, end), "operation": c["operation"]}
                for s in range(start, end + 1, size)]
    if task_type in ("map", "map_reduce"):
        data = list(c["data"])
        size = effective_chunk_size(task_type, len(data), chunk_size)
        ops = ({"operation": c["operation"]} if task_type == "map"
               else {"map_operation": c["map_operation"], "reduce_operation": c["reduce_operation"]})
        return [{"data": data[r.start:r.stop], "offset": r.start, **ops} for r in _slices(len(data), size)]
    if task_type == "matrix_ops":
        op = matrix_name(c["operation"])
        a = c["matrix_a"] if isinstance(c["matrix_a"], np.ndarray) else [list(row) for row in c["matrix_a"]]
        size = effective_chunk_size(task_type, len(a), chunk_size)
        return split_matrix_op(op, a, c.get("matrix_b"), size)
    if task_type == "ml_inference":
        spec, data = model_spec(c), c["input_data"]
        extra = {"return_probabilities": bool(c.get("return_probabilities", True))}
        rows = data.get("inputs") if isinstance(data, Mapping) else data
        if not isinstance(rows, (list, tuple)) or not rows or not isinstance(rows[0], (list, tuple)):
            return [{"model": spec, "input_data": data, **extra}]
        size = effective_chunk_size(task_type, len(rows), chunk_size)
        rest = {k: v for k, v in data.items() if k != "inputs"} if isinstance(data, Mapping) else {}
        return [{"model": spec, "input_data": {"inputs": list(rows[r.start:r.stop]), **rest}, **extra}
                for r in _slices(len(rows), size)]
    if task_type == "ml_train_step":
        spec, data = model_spec(c), c["training_data"]
        size = effective_chunk_size(task_type, len(data["X"]), chunk_size)
        return [{"model": spec, "X": list(data["X"][r.start:r.stop]), "y": list(data["y"][r.start:r.stop]),
                 "loss": c.get("loss")} for r in _slices(len(data["X"]), size)]
    return [{"bundle": dict(c["bundle"])}]


def _leaf_count(value: Any) -> int:
    return len(flatten(value)) if isinstance(value, (list, tuple)) else 1


def payload_work_units(task_type: str, payload: Mapping[str, Any]) -> int:
    """A deterministic size of one chunk's work (roughly: arithmetic operations)."""
    if task_type == "range_reduce":
        n = payload["end"] - payload["start"] + 1
        return n * 8 if reduce_name(payload["operation"]) == "product" else n
    if task_type == "map":
        return _leaf_count(payload["data"])
    if task_type == "map_reduce":
        return 2 * _leaf_count(payload["data"])
    if task_type == "matrix_ops":
        op = matrix_name(payload["operation"])
        rows, cols = len(payload["a"]), len(payload["a"][0])
        if op == "multiply":
            return rows * cols * len(payload["b"][0])
        return rows ** 3 if op in SINGLE_CHUNK else rows * cols
    if task_type in ("ml_inference", "ml_train_step"):
        data = payload.get("X") if task_type == "ml_train_step" else payload.get("input_data")
        if isinstance(data, Mapping):
            data = data.get("inputs", data.get("array", ""))
        size = _leaf_count(data) if isinstance(data, (list, tuple)) else max(1, len(str(data)) // 4)
        return size * (30 if task_type == "ml_train_step" else 10)
    return 1_000_000  # user code: unknown, priced as a fixed slice of CPU
