"""`ledger-net` commands that drive a running node's tasks over its HTTP control API:
`submit` (one subcommand per task type), `status`, `result`, `cancel`.

They speak to `--url` (default http://127.0.0.1:5557) and send the node's API token
(`--token`, or read from `DATA_DIR/api.token`), as every HTTP command does (`cli_common.call`).
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from .cli_common import (
    CliError,
    call,
    emit_json,
    json_option,
    progress,
    run,
    short,
    token_of,
    url_option,
    warn,
)
from .network.protocol import API
from .projections.status import TERMINAL, TaskStatus

# ------------------------------------------------------------------ HTTP helpers

def _json_arg(text: str, what: str) -> Any:
    """A JSON value given inline, as @FILE, or as the path of a .json file."""
    source = text
    if text.startswith("@") or (text.endswith(".json") and Path(text).is_file()):
        path = Path(text[1:] if text.startswith("@") else text)
        source = path.read_text()
    try:
        return orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{what}: not valid JSON ({exc})") from None


def _matrix(path: str, what: str) -> Any:
    """A matrix from .npy, .json or .csv."""
    import numpy as np

    file = Path(path)
    if not file.is_file():
        raise CliError(f"{what}: no file {path}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(file, allow_pickle=False).tolist()
        except ValueError as exc:
            raise CliError(f"{what}: {path} is not a readable .npy array ({exc})") from None
    if suffix == ".csv":
        try:
            return np.atleast_2d(np.loadtxt(file, delimiter=",", dtype=float)).tolist()
        except ValueError as exc:
            raise CliError(f"{what}: {path} is not a numeric CSV ({exc})") from None
    return _json_arg(str(file) if suffix == ".json" else "@" + str(file), what)


def _model_weights(path: str) -> dict[str, Any]:
    """The model's weights inline, so the node needs no access to the file."""
    from .compute.ml import load_model

    if not Path(path).is_file():
        raise CliError(f"--model: no file {path}")
    return load_model({"model_path": path}).to_weights()


def _task_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--max-price", type=float, default=None, show_default="1.0 credit (the node's default budget)",
                     help="Budget in credits for the whole task, escrowed at submission."),
        click.option("--priority", default=None, help="low, normal, high, critical (or 1-4)."),
        click.option("--chunk-size", type=click.IntRange(1), default=None, help="Items per chunk."),
        click.option("--replicas", type=click.IntRange(1, 16), default=None, help="Workers per chunk (redundancy)."),
        click.option("--quorum", type=click.IntRange(1, 16), default=None, help="Agreeing replicas needed."),
        click.option("--timeout-seconds", type=click.FloatRange(0.1), default=None, help="Per-chunk time limit."),
        click.option("--ram-gb", type=click.FloatRange(0.01), default=None, help="Memory a chunk may use."),
        click.option("--task-id", default=None, help="Choose the task id (default: a fresh uuid)."),
        click.option("--wait", is_flag=True, help="Show progress until the task ends, then print its result."),
        click.option("--wait-timeout", type=click.FloatRange(0.1), default=600.0, show_default=True,
                     help="Give up waiting after this many seconds."),
        json_option,
        url_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _submit(task_type: str, params: dict[str, Any], opts: dict[str, Any], requirements: dict[str, Any] | None = None
            ) -> None:
    config = dict(params)
    for key in ("max_price", "chunk_size", "replicas", "quorum"):
        if opts.get(key) is not None:
            config[key] = opts[key]
    req = dict(requirements or {})
    if opts.get("timeout_seconds") is not None:
        req["timeout_seconds"] = opts["timeout_seconds"]
    if opts.get("ram_gb") is not None:
        req["ram_gb"] = opts["ram_gb"]
    task: dict[str, Any] = {"task_type": task_type, "requirements": req, "config": config}
    if opts.get("priority") is not None:
        p = opts["priority"]
        task["priority"] = int(p) if p.isdigit() else p
    if opts.get("task_id"):
        task["task_id"] = opts["task_id"]
    url, token, data_dir = opts["url"], opts["token"], opts["data_dir"]
    answer = call(url, token, data_dir, "POST", f"{API}/tasks", body=task)
    task_id = answer["task_id"]
    if not opts["wait"]:
        if opts["as_json"]:
            emit_json(answer)
        else:
            click.echo(task_id)
        return
    status = _wait(url, token_of(token, data_dir), task_id, opts["wait_timeout"], quiet=opts["as_json"])
    result = None
    if status["status"] == TaskStatus.COMPLETED:
        result = call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}/result")["result"]
    if opts["as_json"]:
        emit_json({"task_id": task_id, "status": status, "result": result})
    elif status["status"] == TaskStatus.COMPLETED:
        click.echo(f"task {task_id} completed; paid {status['paid']} credits to {len(status['workers'])} worker(s)",
                   err=True)
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        warn(f"error: task {task_id} {status['status']}" + (f": {status['error']}" if status.get("error") else ""))
    sys.exit(0 if status["status"] == TaskStatus.COMPLETED else 1)


def _wait(url: str, token: str | None, task_id: str, timeout: float, quiet: bool = False) -> dict[str, Any]:
    """Poll the task until it ends (bounded by `timeout`); a progress bar on a terminal,
    a line per change otherwise."""
    from .network.client import PeerClient

    async def go() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_seen: tuple[Any, ...] = ()
        async with PeerClient(url, token=token) as client:
            status = await client.request("GET", f"{API}/tasks/{task_id}")
            with progress(0 if quiet else max(1, int(status["chunks_total"])), f"task {short(task_id, 16)}") as tick:
                done = 0
                while loop.time() < deadline:
                    now_done = int(status["chunks_done"])
                    if now_done > done:
                        tick(now_done - done)
                        done = now_done
                    seen = (status["status"], status["chunks_done"], status["chunks_failed"])
                    if seen != last_seen and not quiet and not sys.stderr.isatty():
                        warn(f"{task_id}: {status['status']} {status['chunks_done']}/{status['chunks_total']} chunks"
                             + (f", {status['chunks_failed']} failed" if status["chunks_failed"] else ""))
                        last_seen = seen
                    if status["status"] in TERMINAL:
                        return status
                    await asyncio.sleep(0.2)
                    status = await client.request("GET", f"{API}/tasks/{task_id}")
        raise CliError(f"task {task_id} still {status['status']} after {timeout:g}s "
                       f"(see: ledger-net status {task_id})")

    return run(go())


# ------------------------------------------------------------------ submit

@click.group()
def submit() -> None:
    """Submit a task of any type to a running node (escrowed from its balance)."""


@submit.command(name="range_reduce")
@click.option("--start", type=int, required=True)
@click.option("--end", type=int, required=True)
@click.option("--operation", required=True, help="sum, product, mean, variance, min, max, count, …")
@_task_options
def submit_range_reduce(start: int, end: int, operation: str, **opts: Any) -> None:
    """Reduce the inclusive integer range START..END."""
    _submit("range_reduce", {"start": start, "end": end, "operation": operation}, opts)


@submit.command(name="map")
@click.option("--data", required=True, help="A JSON list, @FILE or FILE.json.")
@click.option("--operation", required=True, help="square, sqrt, double, negate, abs, …")
@_task_options
def submit_map(data: str, operation: str, **opts: Any) -> None:
    """Apply an operation to every element of a list."""
    _submit("map", {"data": _json_arg(data, "--data"), "operation": operation}, opts)


@submit.command(name="map_reduce")
@click.option("--data", required=True, help="A JSON list, @FILE or FILE.json.")
@click.option("--map-operation", required=True)
@click.option("--reduce-operation", required=True)
@_task_options
def submit_map_reduce(data: str, map_operation: str, reduce_operation: str, **opts: Any) -> None:
    """Map every element, then reduce the mapped values."""
    _submit("map_reduce", {"data": _json_arg(data, "--data"), "map_operation": map_operation,
                           "reduce_operation": reduce_operation}, opts)


@submit.command(name="matrix_ops")
@click.option("--a", "matrix_a", required=True, metavar="FILE", help="Matrix A (.npy, .json or .csv).")
@click.option("--b", "matrix_b", default=None, metavar="FILE", help="Matrix B (binary operations).")
@click.option("--operation", required=True, help="multiply, add, subtract, transpose, inverse, …")
@_task_options
def submit_matrix_ops(matrix_a: str, matrix_b: str | None, operation: str, **opts: Any) -> None:
    """A matrix operation on A (and B)."""
    _submit("matrix_ops", {"matrix_a": _matrix(matrix_a, "--a"),
                           "matrix_b": _matrix(matrix_b, "--b") if matrix_b else None, "operation": operation}, opts)


@submit.command(name="ml_inference")
@click.option("--model", required=True, metavar="FILE.npz", help="A numpy .npz model (linear or MLP).")
@click.option("--inputs", required=True, help="Input rows: JSON, @FILE or FILE.json.")
@click.option("--probabilities", is_flag=True, help="Return class probabilities, not labels.")
@_task_options
def submit_ml_inference(model: str, inputs: str, probabilities: bool, **opts: Any) -> None:
    """Run a model on input rows (the weights travel with the task)."""
    params: dict[str, Any] = {"weights": _model_weights(model), "input_data": _json_arg(inputs, "--inputs")}
    if probabilities:
        params["return_probabilities"] = True
    _submit("ml_inference", params, opts)


@submit.command(name="ml_train_step")
@click.option("--model", required=True, metavar="FILE.npz")
@click.option("--data", required=True, help='{"X": rows, "y": targets} as JSON, @FILE or FILE.json.')
@click.option("--learning-rate", type=click.FloatRange(0, min_open=True), default=0.1, show_default=True)
@click.option("--loss", default=None, help="mse or cross_entropy (default: by model kind).")
@_task_options
def submit_ml_train_step(model: str, data: str, learning_rate: float, loss: str | None, **opts: Any) -> None:
    """One data-parallel gradient step; the result holds the new weights."""
    params: dict[str, Any] = {"weights": _model_weights(model), "training_data": _json_arg(data, "--data"),
                              "learning_rate": learning_rate}
    if loss:
        params["loss"] = loss
    _submit("ml_train_step", params, opts)


@submit.command(name="code")
@click.option("--entry", required=True, help="The entrypoint file name (e.g. script.py or module.wasm).")
@click.option("--file", "files", multiple=True, type=click.Path(dir_okay=False), help="A file of the bundle "
              "(repeatable; stored under its base name).")
@click.option("--stdin", default=None, help="Text for the program's stdin (or @FILE).")
@click.option("--arg", "args", multiple=True, help="A program argument (repeatable).")
@click.option("--sandbox", type=click.Choice(["process_isolation", "wasm", "container"]), default=None,
              help="Sandbox kind (default process_isolation).")
@_task_options
def submit_code(entry: str, files: tuple[str, ...], stdin: str | None, args: tuple[str, ...], sandbox: str | None,
                **opts: Any) -> None:
    """Run user code in a sandbox on a worker."""
    bundle_files: dict[str, Any] = {}
    paths = list(files) or ([entry] if Path(entry).is_file() else [])
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise CliError(f"--file: no file {path}")
        content = file.read_bytes()
        try:
            bundle_files[file.name] = content.decode("utf-8")
        except UnicodeDecodeError:
            bundle_files[file.name] = {"$bytes": base64.b64encode(content).decode("ascii")}
    name = Path(entry).name
    if name not in bundle_files:
        raise CliError(f"--entry {entry}: give its file with --file")
    if stdin is not None and stdin.startswith("@"):
        stdin = Path(stdin[1:]).read_text()
    bundle = {"entrypoint": name, "files": bundle_files, "stdin": stdin, "args": list(args)}
    requirements = {"sandbox_type": sandbox} if sandbox else {}
    _submit("code", {"bundle": bundle}, opts, requirements)


# ------------------------------------------------------------------ tasks

@click.command()
@click.argument("task_id")
@click.option("--wait", is_flag=True, help="Follow it until it ends.")
@click.option("--wait-timeout", type=click.FloatRange(0.1), default=600.0, show_default=True)
@url_option
@json_option
def status(task_id: str, wait: bool, wait_timeout: float, url: str, data_dir: Path, token: str | None,
           as_json: bool) -> None:
    """A task's status and progress (all tasks: ledger-net status all)."""
    if task_id == "all":
        answer = call(url, token, data_dir, "GET", f"{API}/tasks", params={"limit": 1000})
        if as_json:
            emit_json(answer)
            return
        for t in answer["tasks"]:
            click.echo(f"{t['task_id']:<40}{t['status']:<11}{t['task_type']:<14}{t['progress'] * 100:>5.0f}%  "
                       f"paid {t['paid']}")
        click.echo(f"{answer['total']} task(s)")
        return
    if wait:
        s = _wait(url, token_of(token, data_dir), task_id, wait_timeout, quiet=as_json)
    else:
        s = call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}")
    if as_json:
        emit_json(s)
        return
    click.echo(f"task {s['task_id']}: {s['status']} ({s['progress'] * 100:.0f}%), {s['task_type']}, "
               f"{s['chunks_done']}/{s['chunks_total']} chunks done, {s['chunks_failed']} failed")
    click.echo(f"escrow {s['escrow']}, paid {s['paid']}, refund {s['refund']}; workers: "
               + (", ".join(short(w, 12) for w in s["workers"]) or "none yet"))
    if s.get("error"):
        click.echo(f"reason: {s['error']}")


@click.command()
@click.argument("task_id")
@url_option
@json_option
def result(task_id: str, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """A completed task's result (JSON)."""
    answer = call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}/result")
    click.echo(orjson.dumps(answer if as_json else answer["result"], option=orjson.OPT_INDENT_2).decode())


@click.command()
@click.argument("task_id")
@url_option
@json_option
def cancel(task_id: str, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """Cancel a task this node owns; the rest of its escrow is refunded."""
    answer = call(url, token, data_dir, "POST", f"{API}/tasks/{task_id}/cancel")
    if as_json:
        emit_json(answer)
    elif answer["cancelled"]:
        click.echo(f"task {task_id} cancelled; refunded {answer['refund']} credits")
    else:
        click.echo(f"task {task_id} was already {answer['status']}; nothing to cancel")

COMMANDS = [submit, status, result, cancel]
