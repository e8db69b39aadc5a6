"""Numpy models from real files: inference, gradients, data-parallel train steps."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from ledger_net.compute import aggregate, blob_hash, plan_chunks, run_chunk
from ledger_net.compute.ml import (
    combine_gradients,
    load_model,
    loss_and_gradients,
    model_from_arrays,
    save_model,
    train_shard,
)
from ledger_net.core.task import Task
from ledger_net.errors import TaskError

RNG = np.random.default_rng(42)


@pytest.fixture
def mlp_path(tmp_path):
    path = tmp_path / "mlp.npz"
    np.savez(path, W1=RNG.normal(size=(4, 6)), b1=RNG.normal(size=6) * 0.1, W2=RNG.normal(size=(6, 3)),
             b2=np.zeros(3), activation=np.array("tanh"), labels=np.array(["cat", "dog", "fish"]))
    return str(path)


def test_inference_matches_a_hand_written_forward_pass(mlp_path):
    x = RNG.normal(size=(9, 4))
    task = Task.create_ml_inference("u", mlp_path, {"inputs": x.tolist()}, {}, {"chunk_size": 4})
    assert len(task.create_chunks()) == 3
    out = task.run_locally()
    with np.load(mlp_path) as m:
        logits = np.tanh(x @ m["W1"] + m["b1"]) @ m["W2"] + m["b2"]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["probabilities"], probs, rtol=1e-12)
    assert out["predictions"] == probs.argmax(axis=1).tolist()
    assert out["labels"] == [["cat", "dog", "fish"][i] for i in out["predictions"]]
    np.testing.assert_allclose(np.sum(out["probabilities"], axis=1), 1.0)


def test_linear_regressor_and_raw_list_input(tmp_path):
    path = tmp_path / "lin.npz"
    np.savez(path, W=np.array([[2.0], [-1.0]]), b=np.array([0.5]))
    out = Task.create_ml_inference("u", str(path), [[1.0, 1.0], [3.0, 2.0]], {}, {}).run_locally()
    assert out == {"predictions": [1.5, 4.5], "probabilities": None}


def test_base64_float32_input_and_preprocessing(tmp_path):
    path = tmp_path / "lin.npz"
    np.savez(path, W=np.eye(4)[:, :2], b=np.zeros(2))
    raw = np.arange(8, dtype="<f4")
    data = {"array": base64.b64encode(raw.tobytes()).decode(), "shape": [2, 4], "dtype": "float32",
            "preprocessing": {"scale": 2.0}}
    out = run_chunk("ml_inference", {"model": {"model_path": str(path)}, "input_data": data})
    assert out["predictions"] == [1, 1]
    np.testing.assert_allclose(out["probabilities"][0], np.exp([0, 2]) / np.exp([0, 2]).sum())
    with pytest.raises(TaskError, match="not base64"):
        run_chunk("ml_inference", {"model": {"model_path": str(path)},
                                   "input_data": {"image_data": "base64_encoded_image"}})
    with pytest.raises(TaskError, match="resize"):
        run_chunk("ml_inference", {"model": {"model_path": str(path)},
                                   "input_data": {"inputs": [[1, 2, 3, 4]], "preprocessing": {"resize": [3, 3]}}})


def test_model_errors_are_clear(tmp_path, mlp_path):
    for name in ("resnet50.h5", "model.pt", "model.onnx", "model"):
        with pytest.raises(TaskError, match="unsupported model format"):
            load_model({"model_path": f"models/{name}"})
    with pytest.raises(TaskError, match="not found"):
        load_model({"model_path": str(tmp_path / "missing.npz")})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TaskError, match="not a readable"):
        load_model({"model_path": str(bad)})
    with pytest.raises(TaskError, match="takes 5 inputs"):
        model_from_arrays({"W1": np.ones((2, 3)), "b1": np.ones(3), "W2": np.ones((5, 1)), "b2": np.ones(1)})
    with pytest.raises(TaskError, match="4 features"):
        run_chunk("ml_inference", {"model": {"model_path": mlp_path}, "input_data": [[1.0, 2.0]]})
    with pytest.raises(TaskError, match="activation"):
        model_from_arrays({"W": np.ones((2, 2)), "b": np.ones(2), "activation": np.array("swish")})


def test_model_as_a_blob(mlp_path):
    data = Path(mlp_path).read_bytes()
    ref = blob_hash(data)
    x = RNG.normal(size=(2, 4)).tolist()
    by_blob = run_chunk("ml_inference", {"model": {"model_blob": ref}, "input_data": x}, blobs={ref: data})
    by_path = run_chunk("ml_inference", {"model": {"model_path": mlp_path}, "input_data": x})
    assert by_blob == by_path
    with pytest.raises(TaskError, match="does not match its hash"):
        run_chunk("ml_inference", {"model": {"model_blob": ref}, "input_data": x}, blobs={ref: data + b"x"})


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_gradients_match_finite_differences(activation, loss):
    arrays = {"W1": RNG.normal(size=(3, 5)), "b1": RNG.normal(size=5), "W2": RNG.normal(size=(5, 2)),
              "b2": RNG.normal(size=2), "activation": np.array(activation)}
    x = RNG.normal(size=(7, 3))
    y = RNG.integers(0, 2, size=7) if loss == "cross_entropy" else RNG.normal(size=(7, 2))
    value, grads = loss_and_gradients(model_from_arrays(arrays), x, y, loss)
    for name, grad in zip(["W1", "b1", "W2", "b2"], grads, strict=False):
        numeric = np.zeros_like(arrays[name])
        for idx in np.ndindex(arrays[name].shape):
            for sign in (1, -1):
                shifted = {k: v.copy() for k, v in arrays.items()}
                shifted[name][idx] += sign * 1e-6
                numeric[idx] += sign * loss_and_gradients(model_from_arrays(shifted), x, y, loss)[0] / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def _dataset(n=120):
    x = RNG.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y


def test_aggregated_gradient_equals_the_full_batch_gradient(mlp_path):
    x, y = _dataset(101)
    model = load_model({"model_path": mlp_path})
    full_loss, full = loss_and_gradients(model, x, y, "cross_entropy")
    shards = [train_shard(model, x[i:i + 17].tolist(), y[i:i + 17].tolist()) for i in range(0, 101, 17)]
    grads, loss, n = combine_gradients(shards)
    assert n == 101 and loss == pytest.approx(full_loss, rel=1e-12)
    for name, g in zip(["W1", "b1", "W2", "b2"], full, strict=False):
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-14)


def test_train_steps_reduce_the_loss_and_can_be_saved(mlp_path, tmp_path):
    x, y = _dataset()
    config = {"learning_rate": 0.5, "chunk_size": 32}
    task = Task.create_ml_train_step("u", mlp_path, {"X": x.tolist(), "y": y.tolist()}, {}, config)
    assert len(task.create_chunks()) == 4
    losses = []
    weights = None
    for _ in range(15):
        extra = {"weights": weights} if weights else {}
        task = Task.create_ml_train_step("u", mlp_path, (x.tolist(), y.tolist()), {}, {**config, **extra})
        assert task.validate() == []
        result = task.run_locally()
        losses.append(result["loss"])
        weights = result["weights"]
    assert losses[-1] < 0.6 * losses[0]
    assert all(b < a + 1e-9 for a, b in zip(losses, losses[1:], strict=False))
    assert result["samples"] == 120 and result["gradient_norm"] > 0
    save_model(tmp_path / "trained.npz", weights)
    out = Task.create_ml_inference("u", str(tmp_path / "trained.npz"), x.tolist(), {}, {}).run_locally()
    assert np.mean(np.asarray(out["predictions"]) == y) > 0.7


def test_linear_regression_by_mse(tmp_path):
    path = tmp_path / "reg.npz"
    np.savez(path, W=np.zeros((2, 1)), b=np.zeros(1))
    x = RNG.normal(size=(64, 2))
    y = x @ np.array([1.5, -2.0]) + 0.25
    config = {"model_path": str(path), "training_data": {"X": x.tolist(), "y": y.tolist()}, "learning_rate": 0.3}
    first = None
    for _ in range(60):
        payloads = plan_chunks("ml_train_step", config, 10)
        result = aggregate("ml_train_step", config, [run_chunk("ml_train_step", p) for p in payloads])
        first = first if first is not None else result["loss"]
        config = {**config, "weights": result["weights"]}
    assert result["loss"] < 1e-3 * first
    np.testing.assert_allclose(np.asarray(result["weights"]["W"]).ravel(), [1.5, -2.0], atol=1e-2)
    assert result["weights"]["b"][0] == pytest.approx(0.25, abs=1e-2)


def test_bad_training_targets(mlp_path):
    model = load_model({"model_path": mlp_path})
    with pytest.raises(TaskError, match="class indices"):
        train_shard(model, [[0, 0, 0, 0]], [7])
    with pytest.raises(TaskError, match="y has shape"):
        train_shard(model, [[0, 0, 0, 0]], [0, 1])
