"""Numpy models: inference and data-parallel SGD steps on real model files.

A model is a numpy ``.npz`` file (or its bytes as a blob, or inline weights):

* linear: ``W`` (inputs x outputs) and ``b`` (outputs);
* MLP: ``W1, b1, W2, b2, ...`` plus an ``activation`` entry (relu, tanh, sigmoid,
  identity) applied between layers;
* optional ``kind`` ("classifier" or "regressor"; default: classifier when there
  is more than one output) and ``labels`` (class names).

Inference returns class predictions and softmax probabilities (classifiers) or
values (regressors). A train step is data parallel: every chunk computes the exact
gradient of the mean loss on its shard, and the owner averages them weighted by
shard size — which is exactly the full-batch gradient — then steps the weights.
Other formats (.h5, .pt, .onnx, ...) are refused with a clear TaskError.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TaskError
from .blobs import fetch_blob

ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
LOSSES = ("cross_entropy", "mse")
SUPPORTED_MODEL_FORMATS = (".npz",)


@dataclass
class Model:
    """Layers ``(W, b)`` with their names in the file, and how to read the output."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    names: list[tuple[str, str]]
    activation: str = "relu"
    kind: str = "classifier"
    labels: list[Any] | None = field(default=None)

    @property
    def input_dim(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def output_dim(self) -> int:
        return int(self.weights[-1].shape[1])

    def parameter_count(self) -> int:
        return int(sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=False)))

    def to_weights(self) -> dict[str, Any]:
        """Weights as JSON-friendly lists, keyed by their file names."""
        out: dict[str, Any] = {}
        for (wn, bn), w, b in zip(self.names, self.weights, self.biases, strict=False):
            out[wn], out[bn] = w.tolist(), b.tolist()
        out["activation"] = self.activation
        out["kind"] = self.kind
        return out


def _scalar_str(value: Any) -> str:
    return str(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else ""


def model_from_arrays(arrays: Mapping[str, Any], where: str = "model") -> Model:
    """Build a :class:`Model` from named arrays (an opened npz or an inline dict)."""
    keys = set(arrays)
    if {"W", "b"} <= keys:
        names = [("W", "b")]
    else:
        idx = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"W(\d+)", k)))
        if not idx:
            raise TaskError(f"{where} has no weights: expected W and b, or W1, b1, W2, b2, ...")
        if idx != list(range(1, len(idx) + 1)):
            raise TaskError(f"{where} layers are not numbered 1..{len(idx)}: found W{idx}")
        names = [(f"W{i}", f"b{i}") for i in idx]
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for wn, bn in names:
        if bn not in keys:
            raise TaskError(f"{where} has {wn} but no {bn}")
        w, b = np.asarray(arrays[wn], dtype=np.float64), np.asarray(arrays[bn], dtype=np.float64)
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[1]:
            raise TaskError(f"{where}: {wn} must be 2-D (in x out) and {bn} 1-D of length out; "
                            f"got {w.shape} and {b.shape}")
        if weights and weights[-1].shape[1] != w.shape[0]:
            raise TaskError(f"{where}: {wn} takes {w.shape[0]} inputs "
                            f"but the layer before gives {weights[-1].shape[1]}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise TaskError(f"{where}: {wn}/{bn} hold non-finite values")
        weights.append(w)
        biases.append(b)
    activation = _scalar_str(arrays["activation"]) if "activation" in keys else "relu"
    if activation not in ACTIVATIONS:
        raise TaskError(f"{where}: unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    kind = _scalar_str(arrays["kind"]) if "kind" in keys else (
        "classifier" if weights[-1].shape[1] > 1 else "regressor")
    if kind not in ("classifier", "regressor"):
        raise TaskError(f"{where}: kind must be 'classifier' or 'regressor', got {kind!r}")
    labels = np.asarray(arrays["labels"]).tolist() if "labels" in keys else None
    return Model(weights, biases, names, activation, kind, labels)


def _load_npz(source: Any, where: str) -> Model:
    try:
        with np.load(source, allow_pickle=False) as npz:
            return model_from_arrays({k: npz[k] for k in npz.files}, where)
    except (ValueError, OSError, EOFError) as exc:
        raise TaskError(f"{where} is not a readable .npz model: {exc}") from None


def load_model(spec: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None) -> Model:
    """The model a task names: ``weights`` inline, ``model_blob`` (npz bytes by hash) or ``model_path``."""
    if spec.get("weights") is not None:
        if not isinstance(spec["weights"], Mapping):
            raise TaskError("weights must be a mapping of array names to nested lists")
        return model_from_arrays(spec["weights"], "inline weights")
    if spec.get("model_blob"):
        return _load_npz(io.BytesIO(fetch_blob(spec["model_blob"], blobs)), f"model blob {spec['model_blob'][:12]}")
    path = spec.get("model_path")
    if not isinstance(path, str) or not path:
        raise TaskError("no model: give model_path (a .npz file), model_blob or weights")
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_MODEL_FORMATS:
        raise TaskError(f"unsupported model format {ext or '(none)'!r} for {path}: ledger_net runs numpy .npz "
                        "models (linear W,b or MLP W1,b1,...,activation); convert the model first")
    full = os.path.join(spec["model_dir"], path) if spec.get("model_dir") else path
    if not os.path.isfile(full):
        raise TaskError(f"model file not found: {full}")
    return _load_npz(full, f"model {path}")


def save_model(path_or_file: Any, weights: Mapping[str, Any]) -> None:
    """Write weights (as returned by a train step or :meth:`Model.to_weights`) to a .npz file."""
    model = model_from_arrays(weights, "weights")
    arrays: dict[str, Any] = {}
    for (wn, bn), w, b in zip(model.names, model.weights, model.biases, strict=False):
        arrays[wn], arrays[bn] = w, b
    np.savez(path_or_file, activation=np.array(model.activation), kind=np.array(model.kind), **arrays)


# ---- forward / backward -----------------------------------------------------------

def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    return z


def _act_grad(name: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    return np.ones_like(z)


def forward(model: Model, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Output (logits or values), with every layer's inputs and pre-activations kept for backprop."""
    if x.ndim != 2 or x.shape[1] != model.input_dim:
        raise TaskError(f"inputs have shape {tuple(x.shape)} but the model takes {model.input_dim} features per row")
    inputs, pre = [], []
    a = x
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=False)):
        inputs.append(a)
        z = a @ w + b
        pre.append(z)
        a = z if i == len(model.weights) - 1 else _act(model.activation, z)
    return a, inputs, pre


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def to_matrix(values: Any, where: str) -> np.ndarray:
    """User rows as a float64 (n, features) array; one flat row is one sample."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise TaskError(f"{where} is not a rectangular array of numbers: {exc}") from None
    if arr.ndim == 0 or arr.size == 0:
        raise TaskError(f"{where} is empty or a single number")
    if not np.isfinite(arr).all():
        raise TaskError(f"{where} holds non-finite values")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return arr.reshape(arr.shape[0], -1)


def decode_inputs(input_data: Any) -> np.ndarray:
    """Inference inputs from a list, ``{"inputs": rows}``, or base64 floats with a shape."""
    if isinstance(input_data, Mapping):
        if "inputs" in input_data:
            x = to_matrix(input_data["inputs"], "input_data.inputs")
        else:
            key = "array" if "array" in input_data else "image_data" if "image_data" in input_data else None
            if key is None:
                raise TaskError("input_data needs 'inputs' (rows of numbers) or 'array' (base64 floats with 'shape')")
            try:
                raw = base64.b64decode(input_data[key], validate=True)
                arr = np.frombuffer(raw, dtype=np.dtype(input_data.get("dtype", "float32")).newbyteorder("<"))
            except (binascii.Error, ValueError, TypeError) as exc:
                raise TaskError(f"input_data.{key} is not base64 of {input_data.get('dtype', 'float32')} "
                                f"values: {exc}") from None
            if "shape" in input_data:
                try:
                    arr = arr.reshape([int(d) for d in input_data["shape"]])
                except ValueError as exc:
                    raise TaskError(f"input_data.shape does not fit the data: {exc}") from None
            x = to_matrix(arr, f"input_data.{key}")
        return _preprocess(x, input_data.get("preprocessing") or {})
    return to_matrix(input_data, "input_data")


def _preprocess(x: np.ndarray, steps: Mapping[str, Any]) -> np.ndarray:
    for name, arg in steps.items():
        if name == "normalize":
            if arg:
                std = x.std(axis=1, keepdims=True)
                x = (x - x.mean(axis=1, keepdims=True)) / np.where(std == 0, 1.0, std)
        elif name == "scale":
            x = x * float(arg)
        elif name == "resize":
            pixels = int(np.prod(arg))
            if pixels <= 0 or x.shape[1] % pixels:  # only a no-op resize is honoured: nothing is resampled
                raise TaskError(f"preprocessing.resize to {arg} is not supported: inputs are not resampled")
        else:
            raise TaskError(f"unknown preprocessing step {name!r}; known: normalize, scale")
    return x


def infer(model: Model, x: np.ndarray, return_probabilities: bool = True) -> dict[str, Any]:
    """Predictions for rows ``x``; softmax probabilities for a classifier."""
    out, _, _ = forward(model, x)
    if model.kind == "regressor":
        values = out[:, 0] if out.shape[1] == 1 else out
        return {"predictions": values.tolist(), "probabilities": None}
    probs = softmax(out)
    classes = probs.argmax(axis=1)
    result: dict[str, Any] = {"predictions": classes.tolist(),
                              "probabilities": probs.tolist() if return_probabilities else None}
    if model.labels is not None:
        result["labels"] = [model.labels[c] for c in classes]
    return result


def _targets(model: Model, y: Any, n: int, loss: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.shape[:1] != (n,):
        raise TaskError(f"training data has {n} rows of X but y has shape {arr.shape}")
    if loss == "cross_entropy":
        k = model.output_dim
        if arr.ndim == 2:
            if arr.shape[1] != k:
                raise TaskError(f"one-hot y has {arr.shape[1]} classes but the model has {k}")
            return arr
        if arr.ndim != 1 or not np.all(arr == np.round(arr)) or arr.min() < 0 or arr.max() >= k:
            raise TaskError(f"y must be class indices 0..{k - 1} (or one-hot rows)")
        return np.eye(k)[arr.astype(np.int64)]
    arr = arr.reshape(n, -1)
    if arr.shape[1] != model.output_dim:
        raise TaskError(f"y has {arr.shape[1]} targets per row but the model outputs {model.output_dim}")
    return arr


def loss_and_gradients(model: Model, x: np.ndarray, y: Any, loss: str) -> tuple[float, list[np.ndarray]]:
    """Mean loss over the rows and its exact gradient, as ``[dW1, db1, dW2, db2, ...]``."""
    if loss not in LOSSES:
        raise TaskError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    n = x.shape[0]
    out, inputs, pre = forward(model, x)
    t = _targets(model, y, n, loss)
    if loss == "cross_entropy":
        z = out - out.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = float(-(t * log_p).sum() / n)
        delta = (np.exp(log_p) - t) / n
    else:
        diff = out - t
        value = float((diff * diff).mean())
        delta = 2.0 * diff / diff.size
    grads: list[np.ndarray] = []
    for i in range(len(model.weights) - 1, -1, -1):
        grads[:0] = [inputs[i].T @ delta, delta.sum(axis=0)]
        if i:
            delta = (delta @ model.weights[i].T) * _act_grad(model.activation, pre[i - 1], inputs[i])
    return value, grads


def default_loss(model: Model) -> str:
    return "cross_entropy" if model.kind == "classifier" else "mse"


def train_shard(model: Model, x: Any, y: Any, loss: str | None = None) -> dict[str, Any]:
    """One chunk of a train step: the shard's size, mean loss and gradient."""
    xm = to_matrix(x, "training_data.X")
    value, grads = loss_and_gradients(model, xm, y, loss or default_loss(model))
    names = [name for pair in model.names for name in pair]
    gradients = {k: g.tolist() for k, g in zip(names, grads, strict=False)}
    return {"n": int(xm.shape[0]), "loss": value, "gradients": gradients}


def combine_gradients(shards: Sequence[Mapping[str, Any]]) -> tuple[dict[str, np.ndarray], float, int]:
    """Shard-size-weighted mean of shard gradients and losses: the full-batch values."""
    total = sum(int(s["n"]) for s in shards)
    if total == 0:
        raise TaskError("train step has no training rows")
    grads: dict[str, np.ndarray] = {}
    loss = 0.0
    for s in shards:
        w = int(s["n"]) / total
        loss += w * float(s["loss"])
        for k, g in s["gradients"].items():
            grads[k] = grads.get(k, 0.0) + w * np.asarray(g, dtype=np.float64)
    return grads, loss, total


def apply_step(model: Model, shards: Sequence[Mapping[str, Any]], learning_rate: float) -> dict[str, Any]:
    """Average the shards' gradients and return the updated weights and the step's loss."""
    grads, loss, total = combine_gradients(shards)
    weights = model.to_weights()
    norm_sq = 0.0
    for (wn, bn), w, b in zip(model.names, model.weights, model.biases, strict=False):
        for name, param in ((wn, w), (bn, b)):
            if name not in grads or np.shape(grads[name]) != param.shape:
                raise TaskError(f"chunk gradients lack {name} or have the wrong shape")
            norm_sq += float((grads[name] ** 2).sum())
            weights[name] = (param - learning_rate * grads[name]).tolist()
    return {"weights": weights, "loss": loss, "samples": total,
            "learning_rate": learning_rate, "gradient_norm": float(np.sqrt(norm_sq))}
