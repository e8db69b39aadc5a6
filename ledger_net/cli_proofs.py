"""`ledger-net` checkpoints and proofs over a ledger (no running node needed): checkpoint,
prove balance|event, and verify-proof, which a light client runs with the genesis and the
witness keys alone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from .cli_common import (
    CliError,
    data_dir_option,
    db_url_of,
    db_url_option,
    emit_json,
    json_option,
    key_passphrase,
    open_ledger,
    open_url,
    passphrase_option,
)
from .ledger.encoding import is_hash

# ------------------------------------------------------------------ checkpoints and proofs

def _open_checkpoints(data_dir: Path, db_url: str | None, identity: Any = None) -> Any:
    """(ledger, CheckpointService) over a data directory, projections loaded."""
    from .core.checkpoints import CheckpointService
    from .projections.runner import ProjectionRunner

    ledger = open_url(db_url_of(data_dir, db_url), identity) if identity is not None else open_ledger(data_dir, db_url)
    if ledger.net is None:
        ledger.close()
        raise CliError(f"{db_url or data_dir} holds no ledger")
    return ledger, CheckpointService(ledger, ProjectionRunner(ledger), witness=False)


@click.command()
@data_dir_option
@db_url_option
@passphrase_option
@click.option("--make", is_flag=True, help="Sign a new checkpoint of this node's books (needs its key).")
@json_option
def checkpoint(data_dir: Path, db_url: str | None, passphrase_file: Path | None, make: bool, as_json: bool) -> None:
    """Show the latest checkpoint (this node's, else anyone's), or --make one: a signed note of
    the frontier this node holds and the state root of its balances and reputation there."""
    from .errors import NodeError
    from .ledger.identity import KEY_FILE, Identity

    identity = None
    if make:
        if not (data_dir / KEY_FILE).exists():
            raise CliError(f"--make signs with the node's key, and {data_dir / KEY_FILE} does not exist")
        identity = Identity.load(data_dir, key_passphrase(data_dir, passphrase_file))
    ledger, service = _open_checkpoints(data_dir, db_url, identity)
    try:
        try:
            event = service.make() if make else service.resolve(None)
        except NodeError as exc:
            raise CliError(str(exc)) from None
        service.runner.flush()
        view = {**service.describe(event), "net": ledger.net}
    finally:
        ledger.close()
    if as_json:
        emit_json(view)
        return
    click.echo(f"checkpoint {view['hash']} ({'made now' if make else 'latest'})")
    for key in ("net", "signer", "seq", "id", "events", "authors", "frontier_root", "state_size", "state_root"):
        click.echo(f"  {key:<14}{view[key]}")
    click.echo(f"  {'cosigners':<14}{', '.join(view['cosigners']) or 'none yet'}")


@click.group()
def prove() -> None:
    """Proofs a light client checks with the genesis and witness keys alone (see verify-proof)."""


def _write_proof(proof: Any, output: str) -> None:
    from .ledger.proof_codec import compact

    text = orjson.dumps(compact(proof), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _prove(data_dir: Path, db_url: str | None, make: Any) -> Any:
    from .errors import NodeError

    ledger, service = _open_checkpoints(data_dir, db_url)
    try:
        return make(service)
    except NodeError as exc:
        raise CliError(str(exc)) from None
    finally:
        ledger.close()


_OUTPUT = click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
                       show_default=True, help="Write the proof here.")
_AT = click.option("--at", default=None, metavar="CHECKPOINT",
                   help="A checkpoint hash or prefix (default: the latest).")


@prove.command(name="balance")
@click.argument("account")
@data_dir_option
@db_url_option
@_AT
@_OUTPUT
def prove_balance(account: str, data_dir: Path, db_url: str | None, at: str | None, output: str) -> None:
    """ACCOUNT's balance, escrow, incoming and vouchers in a checkpoint's state root (or, for an
    account without an entry there, the proof that it has none: it held nothing)."""
    if not is_hash(account):
        raise CliError("ACCOUNT is a node id: 64 lower-case hex characters")
    _write_proof(_prove(data_dir, db_url, lambda s: s.balance_proof(account, at)), output)


@prove.command(name="event")
@click.argument("hash_", metavar="HASH")
@data_dir_option
@db_url_option
@_AT
@_OUTPUT
def prove_event(hash_: str, data_dir: Path, db_url: str | None, at: str | None, output: str) -> None:
    """The event HASH in its author's chain, as a checkpoint names that chain."""
    if not is_hash(hash_):
        raise CliError("HASH is an event hash: 64 lower-case hex characters")
    _write_proof(_prove(data_dir, db_url, lambda s: s.event_proof(hash_, at)), output)


@click.command(name="verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--genesis", required=True, metavar="HASH", help="The network id: the genesis event's hash.")
@click.option("--witness", "witnesses", multiple=True, required=True, metavar="KEY",
              help="A witness key you trust (repeat the option for each).")
@click.option("--threshold", type=int, required=True, metavar="K",
              help="How many of those keys must have signed the checkpoint.")
def verify_proof(file: str, genesis: str, witnesses: tuple[str, ...], threshold: int) -> None:
    """Check a proof from `prove` (or the HTTP API) with no database: prints OK, or exits 1
    with one line naming what failed."""
    from . import light
    from .ledger.proof_codec import expand

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        proof = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        click.echo(f"FAILED: the proof is not JSON ({exc})")
        sys.exit(1)
    verdict = light.verify_proof(proof, net=genesis, witnesses=list(witnesses), threshold=threshold)
    if not verdict.ok:
        click.echo(f"FAILED: {verdict}")
        sys.exit(1)
    proof = expand(proof)  # it verified, so it decodes
    note = (proof.get("checkpoint") or proof.get("new") or {}).get("note", {})
    what = (f"account {proof['account'][:16]}… has no entry (balance 0)" if proof.get("type") == "absence"
            else f"the {proof.get('type')} proof holds")
    click.echo(f"OK: {what} (checkpoint of {str(note.get('signer'))[:16]}…, "
               f"signed by {threshold} or more of the {len(set(witnesses))} trusted key(s))")


COMMANDS = [checkpoint, prove, verify_proof]
