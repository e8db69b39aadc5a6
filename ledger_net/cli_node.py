"""`ledger-net` commands of a node's operator: create its key and books (`init`), seal
its key (`seal-key`), and run it (`node`).

The commands that drive a running node over its HTTP control API live in `cli_tasks`
(submit, status, result, cancel) and `cli_account` (balance, transfer, nodes, events).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import (
    CliError,
    books_url,
    credits,
    data_dir_option,
    db_url_option,
    emit_json,
    json_option,
    key_passphrase,
    node_config,
    open_url,
    passphrase_option,
    remember,
    run,
)
from .logs import quiet_repeats

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


COMMANDS = [init, seal_key, node]
