"""`ledger-net`: the command line of operators and auditors.

Built on click (typed options, environment variables, help pages). The group turns
every failure into ONE line on stderr and a non-zero exit — wrong arguments (exit 2),
refused or unreadable input (`error: …`, exit 2), interruption (130) — never a
traceback (set LEDGER_NET_DEBUG=1 to see one).

Commands live in a module per kind: over a ledger, no node needed, `cli_ledger` (verify,
audit, export, import), `cli_inspect` (replay, explain, inspect, diff) and `cli_proofs`
(checkpoint, prove, verify-proof); a node's own, `cli_node` (init, seal-key, node); and
the HTTP commands to a running node, `cli_tasks` (submit, status, result, cancel) and
`cli_account` (balance, transfer, nodes, events).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from . import cli_account, cli_inspect, cli_ledger, cli_node, cli_proofs, cli_tasks
from .cli_common import DEFAULT_DATA_DIR, CliError
from .errors import LedgerNetError

__all__ = ["cli", "main", "CliError"]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class LedgerNetGroup(click.Group):
    """A click group whose failures are one `error: …` line on stderr."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else (prog_name or "ledger-net")
            _die(f"{where}: {exc.format_message()} (see {where} --help)", exc.exit_code)
        except click.ClickException as exc:
            _die(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _die("interrupted", 130)
        except LedgerNetError as exc:
            _die(str(exc), 2)
        except OSError as exc:
            name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            _die(f"{name}{exc.strerror or exc}", 2)
        except (ValueError, json.JSONDecodeError, UnicodeError) as exc:
            _die(f"{type(exc).__name__}: {exc}", 2)
        except SystemExit:
            raise
        except Exception as exc:  # a bug: still one line, the traceback on demand
            if os.environ.get("LEDGER_NET_DEBUG"):
                traceback.print_exc()
            _die(f"internal error {type(exc).__name__}: {exc} (LEDGER_NET_DEBUG=1 shows the traceback)", 3)
        sys.exit(code if isinstance(code, int) else 0)


def _die(message: str, code: int) -> None:
    if os.environ.get("LEDGER_NET_DEBUG") and sys.exc_info()[0] is not None:
        traceback.print_exc()
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


@click.group(cls=LedgerNetGroup)
@click.version_option(package_name="ledger_net")
def cli() -> None:
    """ledger_net: a peer-to-peer compute network on a signed, hash-chained ledger.

    \b
    Run:      init, node, demo, seal-key   (a sealed node.key: --passphrase-file or $LEDGER_NET_KEY_PASSPHRASE)
    Work:     submit, status, result, cancel, balance, transfer, nodes, events   (--url)
    Audit:    verify, audit, export, import                                       (--data-dir | --db-url | --bundle)
    Debug:    replay, explain, inspect, diff                                      (--data-dir | --db-url)
    """


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


for _command in (*cli_node.COMMANDS, *cli_tasks.COMMANDS, *cli_account.COMMANDS, *cli_ledger.COMMANDS,
                 *cli_inspect.COMMANDS, *cli_proofs.COMMANDS):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> Any:
    """The `ledger-net` console script."""
    return cli.main(args=argv, prog_name="ledger-net")


if __name__ == "__main__":
    main()
