"""`ledger-net` commands of a node's operator: create its books (`init`), run it
(`node`), and drive a running node over its HTTP control API (`submit`, `status`,
`result`, `cancel`, `balance`, `transfer`, `nodes`, `events`).

The HTTP commands speak to `--url` (default http://127.0.0.1:5557) and send the
node's API token (`--token`, or read from `DATA_DIR/api.token`): state-changing
routes need it always, loopback included; read-only ones need it off loopback.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from .cli_common import (
    CliError,
    books_url,
    credits,
    data_dir_option,
    db_url_option,
    emit_json,
    http,
    json_option,
    key_passphrase,
    node_config,
    open_url,
    passphrase_option,
    progress,
    remember,
    run,
    short,
    token_of,
    url_option,
    warn,
)
from .logs import quiet_repeats
from .network.protocol import API
from .projections.status import TERMINAL, TaskStatus

# ------------------------------------------------------------------ init

@click.command()
@data_dir_option
@db_url_option
@click.option("--name", default="ledger-net", show_default=True, help="The new network's name (in its genesis).")
@click.option("--initial-credits", type=float, default=100.0, show_default=True,
              help="Credits the founder mints to itself.")
@click.option("--seed", default=None, metavar="URL", help="Join the network of this running node instead.")
@click.option("--encrypt-key", is_flag=True,
              help="Seal the new node.key with a passphrase (argon2id + SecretBox); every command that signs "
                   "then needs it. Default: a plain key file, mode 0600.")
@click.option("--key-kdf", type=click.Choice(["interactive", "moderate", "sensitive"]), default="moderate",
              show_default=True, help="argon2id cost of sealing: moderate is 256 MiB, ~0.3-1.3 s per open.")
@passphrase_option
@json_option
def init(data_dir: Path, db_url: str | None, name: str, initial_credits: float, seed: str | None,
         encrypt_key: bool, key_kdf: str, passphrase_file: Path | None, as_json: bool) -> None:
    """Create a node's key and books: found a new network (genesis + the founder's credits),
    or join one through a running seed node (its genesis and log are synced from it).

    With --encrypt-key (or any passphrase given) the new node.key is sealed with the passphrase."""
    from .core.founding import found_network
    from .ledger.datadir import DataDir
    from .ledger.events import Event
    from .ledger.identity import KDF_LEVELS, KEY_FILE, Identity, is_sealed
    from .network.auth import load_or_create_token
    from .network.joining import join

    key_exists = (data_dir / KEY_FILE).exists()
    if encrypt_key and key_exists and not is_sealed(data_dir):
        raise CliError(f"{data_dir / KEY_FILE} already holds a plain key: seal it with "
                       f"`ledger-net seal-key --data-dir {data_dir}`")
    passphrase = key_passphrase(data_dir, passphrase_file, creating=encrypt_key and not key_exists)
    opslimit, memlimit = KDF_LEVELS[key_kdf]
    data_dir.mkdir(parents=True, exist_ok=True)
    _hold_node_lock(data_dir, db_url)  # a running node's books are not init's to write
    identity = Identity.load_or_create(data_dir, passphrase, opslimit=opslimit, memlimit=memlimit)
    del passphrase
    db_url = books_url(data_dir, db_url)
    ledger = open_url(db_url or DataDir(data_dir).database_url(), identity)
    try:
        if ledger.net is not None:
            raise CliError(f"{data_dir} already belongs to network {ledger.net} (node {identity.node_id}); "
                           "use another --data-dir")
        known = DataDir.of(data_dir).recorded_network()
        if known is not None:
            raise CliError(f"{data_dir} holds a key whose books are on network {known[:16]}… but these books are "
                           "empty: give their --db-url, or use another --data-dir")
        if seed is None:
            genesis: Event | None = found_network(ledger, name, initial_credits, what="--initial-credits")
            synced = 0
        else:
            synced = run(join(ledger, [seed], timeout=0, catch_up=True))
            genesis = ledger.state.genesis
        # The data dir remembers its books' database and its seed, so the hint below works as printed.
        remember(data_dir, database_url=db_url, seed_nodes=[seed] if seed else None)
        if ledger.net is not None:
            DataDir.of(data_dir).record_network(ledger.net)
        load_or_create_token(data_dir)
        result = {"node_id": identity.node_id, "net": ledger.net, "network_name": genesis.body.get("name") if genesis
                  else None, "data_dir": str(data_dir), "events": ledger.store.count(), "synced": synced,
                  "seed": seed, "balance": credits(ledger.state.spendable(identity.node_id), ledger.state.decimals)}
    finally:
        ledger.close()
    if as_json:
        emit_json(result)
        return
    verb = f"joined network {result['network_name']!r} through {seed}" if seed else \
        f"founded network {result['network_name']!r}"
    click.echo(f"node {result['node_id']} {verb}")
    click.echo(f"network id {result['net']}; {result['events']} events; balance {result['balance']} credits")
    sealed = " sealed with your passphrase" if is_sealed(data_dir) else ""
    click.echo(f"data dir {data_dir} (key node.key{sealed}, API token api.token); "
               f"run it: ledger-net node --data-dir {data_dir}")


@click.command(name="seal-key")
@data_dir_option
@click.option("--key-kdf", type=click.Choice(["interactive", "moderate", "sensitive"]), default="moderate",
              show_default=True, help="argon2id cost: moderate is 256 MiB, ~0.3-1.3 s per open.")
@passphrase_option
@json_option
def seal_key(data_dir: Path, key_kdf: str, passphrase_file: Path | None, as_json: bool) -> None:
    """Seal an existing plain node.key with a passphrase, in place: same key, same node id.

    The file is rewritten atomically (mode 0600). A running node keeps its key in memory:
    restart it with the passphrase. Copies of the plain file elsewhere (backups) stay plain."""
    from .ledger.identity import KDF_LEVELS, KEY_FILE, is_sealed, seal_key_file

    path = data_dir / KEY_FILE
    if not path.exists():
        raise CliError(f"no key at {path}: `ledger-net init --encrypt-key` creates a sealed one")
    if is_sealed(data_dir):
        raise CliError(f"{path} is already sealed")
    opslimit, memlimit = KDF_LEVELS[key_kdf]
    identity = seal_key_file(data_dir, key_passphrase(data_dir, passphrase_file, creating=True),
                             opslimit=opslimit, memlimit=memlimit)
    if as_json:
        emit_json({"node_id": identity.node_id, "key_file": str(path), "sealed": True, "kdf": key_kdf})
    else:
        click.echo(f"sealed {path} (node {identity.node_id}, argon2id {key_kdf})")


def _hold_node_lock(data_dir: Path, db_url: str | None) -> None:
    """Hold the node's lock (data dir, database) until this command ends, as a node does:
    a command that signs beside a running node would fork it. Refused: one line naming it."""
    from .ledger.lock import NodeLock

    lock = NodeLock(data_dir)
    click.get_current_context().call_on_close(lock.release)
    lock.acquire()
    lock.claim(db_url)


# ------------------------------------------------------------------ node

@click.command()
@data_dir_option
@db_url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=5557, show_default=True, help="0 picks a free port.")
@click.option("--seed", "seeds", multiple=True, metavar="URL", help="A seed node to join through (repeatable).")
@click.option("--initial-credits", type=float, default=None, help="Credits a founding node mints to itself.")
@click.option("--name", "network_name", default="ledger-net", show_default=True,
              help="Network name if this node founds one.")
@click.option("--node-type", type=click.Choice(["client", "public", "seed"]), default="public", show_default=True)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              default="INFO", show_default=True)
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A Host name the control API answers to besides the bound address and localhost "
                   "(e.g. the name of a reverse proxy; repeatable; '*' turns the check off).")
@click.option("--sandbox-floor", type=click.Choice(["process_isolation", "container", "wasm"]),
              default="process_isolation", show_default=True,
              help="The weakest sandbox this node runs user code in: tasks asking for a weaker one get no "
                   "bid, code tasks asking for none run at this one (docs/security.md).")
@click.option("--sandbox-type", "sandbox_types", multiple=True,
              type=click.Choice(["process_isolation", "container", "wasm"]),
              help="A sandbox type to offer (repeatable; default: every type this machine can build).")
@click.option("--new-network", is_flag=True,
              help="Found a new network even though the data dir already holds a key (its books are empty).")
@passphrase_option
def node(data_dir: Path, db_url: str | None, host: str, port: int, seeds: tuple[str, ...],
         initial_credits: float | None, network_name: str, node_type: str, log_level: str,
         allowed_hosts: tuple[str, ...], sandbox_floor: str, sandbox_types: tuple[str, ...],
         new_network: bool, passphrase_file: Path | None) -> None:
    """Run a node in the foreground until SIGINT or SIGTERM, then stop it cleanly.

    A sealed node.key is opened with --passphrase-file, $LEDGER_NET_KEY_PASSPHRASE or a hidden
    prompt; a passphrase given for a data dir with no key yet seals the key it creates."""
    passphrase = key_passphrase(data_dir, passphrase_file)  # before any worker process exists
    from .main import ComputeNetwork

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_repeats()
    seed_nodes = list(seeds) or list(node_config(data_dir).get("seed_nodes", []))
    network = ComputeNetwork(host=host, port=port, node_type=node_type, seed_nodes=seed_nodes, log_level=log_level,
                             data_dir=data_dir, database_url=books_url(data_dir, db_url),
                             initial_credits=initial_credits, network_name=network_name, key_passphrase=passphrase,
                             allowed_hosts=list(allowed_hosts), sandbox_floor=sandbox_floor,
                             sandbox_types=list(sandbox_types) or None, new_network=new_network)
    del passphrase
    run(_serve(network))


async def _serve(network: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await network.start()
        click.echo(f"node {network.ledger.node_id} serving {network.server.url} on network {network.ledger.net}; "
                   f"data dir {network.data_dir}", err=True)
        click.echo(f"ready {network.server.url}", err=True)
        await stop.wait()
        click.echo("stopping…", err=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await network.stop()
    click.echo("stopped", err=True)


# ------------------------------------------------------------------ HTTP helpers

def _call(url: str, token: str | None, data_dir: Path, method: str, path: str, **kwargs: Any) -> Any:
    return http(url, token_of(token, data_dir), method, path, **kwargs)


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
    answer = _call(url, token, data_dir, "POST", f"{API}/tasks", body=task)
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
        result = _call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}/result")["result"]
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
        answer = _call(url, token, data_dir, "GET", f"{API}/tasks", params={"limit": 1000})
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
        s = _call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}")
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
    answer = _call(url, token, data_dir, "GET", f"{API}/tasks/{task_id}/result")
    click.echo(orjson.dumps(answer if as_json else answer["result"], option=orjson.OPT_INDENT_2).decode())


@click.command()
@click.argument("task_id")
@url_option
@json_option
def cancel(task_id: str, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """Cancel a task this node owns; the rest of its escrow is refunded."""
    answer = _call(url, token, data_dir, "POST", f"{API}/tasks/{task_id}/cancel")
    if as_json:
        emit_json(answer)
    elif answer["cancelled"]:
        click.echo(f"task {task_id} cancelled; refunded {answer['refund']} credits")
    else:
        click.echo(f"task {task_id} was already {answer['status']}; nothing to cancel")


# ------------------------------------------------------------------ money and nodes

@click.command()
@click.argument("node_id", required=False)
@url_option
@json_option
def balance(node_id: str | None, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """This node's balance, escrow, incoming, earnings and spending (or NODE_ID's account)."""
    path = f"{API}/accounts/{node_id}" if node_id else f"{API}/balance"
    b = _call(url, token, data_dir, "GET", path)
    if as_json:
        emit_json(b)
        return
    d, units = b["decimals"], b["units"]
    click.echo(f"node {b['node_id']}" + (f" ({b['name']})" if b.get("name") else ""))
    click.echo(f"balance   {credits(units.get('balance', 0), d)} credits (spendable)")
    for key in ("escrow", "incoming", "vouchers", "earned", "spent", "sent", "received", "minted", "burnt"):
        click.echo(f"{key:<10}{credits(units.get(key, 0), d)}")


@click.command(context_settings={"ignore_unknown_options": True})  # "-1" is an amount, not an option
@click.argument("to")
@click.argument("amount")
@url_option
@json_option
def transfer(to: str, amount: str, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """Send AMOUNT credits to TO (a node id; a name becomes a voucher, see docs/ledger.md)."""
    try:
        positive = float(amount) > 0
    except ValueError:
        raise CliError(f"amount {amount!r} is not a number") from None
    if not positive:
        raise CliError(f"amount must be positive, got {amount}")
    answer = _call(url, token, data_dir, "POST", f"{API}/transfers", body={"to": to, "amount": amount})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"sent {amount} credits to {to} as a {answer['kind']} (event {answer['event']}); "
                   f"balance now {answer['balance']}")


@click.command()
@url_option
@json_option
def nodes(url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """The nodes the ledger knows, with this node's link to each."""
    answer = _call(url, token, data_dir, "GET", f"{API}/nodes")
    if as_json:
        emit_json(answer)
        return
    click.echo(f"{'NODE':<18}{'NAME':<22}{'STATUS':<9}{'LINK':<8}URL")
    for n in answer["nodes"]:
        link = n.get("connection") or {}
        state = "self" if n.get("is_self") else ("linked" if link.get("last_ok") else "known")
        click.echo(f"{short(n['node_id'], 16):<18}{str(n.get('name'))[:20]:<22}{n.get('status', '-'):<9}"
                   f"{state:<8}{n.get('url') or '-'}" + (f"  FORKED at seq {n['forked_at']}" if n.get("forked_at")
                                                         else ""))
    click.echo(f"{len(answer['nodes'])} node(s)")


# ------------------------------------------------------------------ events

def _event_line(item: dict[str, Any], decimals: int) -> str:
    from .ledger.events import Event
    from .replay import event_summary

    try:
        event = Event.from_json(item)
        summary = event_summary(event, decimals)
        head = f"{event.type} by {short(event.author, 12)} seq {event.seq} {short(event.hash, 12)}"
    except Exception as exc:  # a feed line we cannot read is shown, not fatal
        head, summary = "unreadable event", str(exc)
    verdict = "" if item.get("valid", True) else f"  NO EFFECT: {item.get('reason')}"
    return f"#{item.get('offset')} {head} {summary}{verdict}"


@click.command()
@click.option("--after", type=click.IntRange(0), default=None, help="Start after this offset (default: the tail).")
@click.option("-n", "--limit", type=click.IntRange(1, 5000), default=20, show_default=True,
              help="How many events (without --follow).")
@click.option("--follow", is_flag=True, help="Keep streaming new events (Ctrl-C to stop; resume with --after).")
@click.option("--count", type=click.IntRange(0), default=0, help="With --follow: stop after this many events.")
@click.option("--type", "type_prefix", default=None, help="Only events whose type starts with this (e.g. task.).")
@url_option
@json_option
def events(after: int | None, limit: int, follow: bool, count: int, type_prefix: str | None, url: str,
           data_dir: Path, token: str | None, as_json: bool) -> None:
    """The tail of the node's event feed, or --follow it live (NDJSON with --json)."""
    from .network.client import PeerClient

    tok = token_of(token, data_dir)
    cursor = {"offset": after or 0}

    def wanted(item: dict[str, Any]) -> bool:
        if not type_prefix:
            return True
        try:
            return str(orjson.loads(item["raw"]).get("type", "")).startswith(type_prefix)
        except (orjson.JSONDecodeError, KeyError, AttributeError):
            return False

    async def go() -> None:
        async with PeerClient(url, token=tok) as client:
            info = await client.info()
            decimals = 6
            if info.get("net"):
                genesis = await client.event(info["net"])
                if genesis is not None:
                    decimals = int(orjson.loads(genesis["raw"])["body"].get("decimals", 6))
            start = after if after is not None else max(0, int(info.get("last_offset") or 0) - limit)
            cursor["offset"] = start
            if not follow:
                page = await client.feed(after=start, limit=limit)
                items = [e for e in page["events"] if wanted(e)]
                if as_json:
                    emit_json({"events": items, "next": page["next"], "last_offset": page["last_offset"]})
                else:
                    for item in items:
                        click.echo(_event_line(item, decimals))
                return
            async for item in client.stream(after=start, limit=count):
                cursor["offset"] = item.get("offset", cursor["offset"])
                if not wanted(item):
                    continue
                if as_json:
                    click.echo(orjson.dumps(item).decode())
                else:
                    click.echo(_event_line(item, decimals))

    try:
        run(go())
    except KeyboardInterrupt:
        warn(f"stopped; resume with: ledger-net events --follow --after {cursor['offset']}")


COMMANDS = [init, seal_key, node, submit, status, result, cancel, balance, transfer, nodes, events]
