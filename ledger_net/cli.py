"""`ledger-net`: the command line of operators and auditors.

Built on click (a well-kept CLI library: typed options, environment variables,
help pages, clean error exits), so every command fails with one readable line
and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .errors import LedgerNetError

DEFAULT_DATA_DIR = Path(os.environ.get("LEDGER_NET_DATA_DIR", Path.home() / ".ledger_net"))


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _open(data_dir: Path, db_url: str | None):  # type: ignore[no-untyped-def]
    from .ledger.chain import Ledger
    from .ledger.identity import Identity
    from .projections.runner import ProjectionRunner

    if db_url is None:
        db_file = data_dir / "ledger.db"
        if not db_file.exists():
            _fail(f"no ledger at {db_file}: give --data-dir or --db-url")
        db_url = f"sqlite:///{db_file}"
    identity = Identity.load_or_create(data_dir) if (data_dir / "node.key").exists() else None
    ledger = Ledger.open(db_url, identity)
    return ledger, ProjectionRunner(ledger)


@click.group()
@click.version_option(package_name="ledger_net")
def cli() -> None:
    """ledger_net: a peer-to-peer compute network on a signed, hash-chained ledger."""


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=lambda: DEFAULT_DATA_DIR / "demo",
              show_default="~/.ledger_net/demo", envvar="LEDGER_NET_DATA_DIR", help="Where the demo's nodes live.")
@click.option("--workers", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--tasks", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the audit as JSON.")
def demo(data_dir: Path, workers: int, tasks: int, as_json: bool) -> None:
    """Run the main job: nodes doing real signed work, then an audit of the books."""
    from .demo import run_demo

    report = run_demo(data_dir, workers=workers, tasks=tasks, say=(lambda _: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    sys.exit(0 if report["ok"] else 1)


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=DEFAULT_DATA_DIR, envvar="LEDGER_NET_DATA_DIR")
@click.option("--db-url", default=None, help="A database URL instead of the data directory's SQLite file.")
@click.option("--json", "as_json", is_flag=True)
def audit(data_dir: Path, db_url: str | None, as_json: bool) -> None:
    """Verify every event from scratch and report supply, balances, forks; non-zero exit on any violation."""
    from .audit import audit as run_audit

    ledger, runner = _open(data_dir, db_url)
    report = run_audit(ledger, runner)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        s = report["supply"]
        click.echo(f"events {report['events']} (invalid {report['invalid_events']}), forks {len(report['forks'])}")
        click.echo(f"minted {s['minted']} = balances {s['balances']} + escrow {s['escrow']} + in transit "
                   f"{s['in_transit']} + vouchers {s['vouchers']} + burnt {s['burnt']} (base units): "
                   f"{'conserved' if report['conserved'] else 'NOT CONSERVED'}")
        for v in report["violations"]:
            click.echo(f"violation: {v}")
        click.echo("AUDIT OK" if report["ok"] else "AUDIT FAILED")
    sys.exit(0 if report["ok"] else 1)


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="ledger-net", standalone_mode=True)
    except LedgerNetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
