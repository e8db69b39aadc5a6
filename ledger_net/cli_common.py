"""What every `ledger-net` command shares: options, opening a ledger, talking to a
running node over HTTP, printing JSON or text, progress bars and the one-line errors.

Kept apart from `cli.py` so the command modules (`cli_node`, `cli_tasks`, `cli_account`,
`cli_ledger`, `cli_inspect`, `cli_proofs`) can import it without importing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATA_DIR = Path(os.environ.get("LEDGER_NET_DATA_DIR", Path.home() / ".ledger_net"))
DEFAULT_URL = "http://127.0.0.1:5557"


class CliError(click.ClickException):
    """A refused command: one line on stderr, exit status 2."""

    exit_code = 2


# ------------------------------------------------------------------ options

def data_dir_option(f: F) -> F:
    return click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_DATA_DIR,
                        envvar="LEDGER_NET_DATA_DIR", show_default="$LEDGER_NET_DATA_DIR or ~/.ledger_net",
                        help="The node's directory (key, ledger.db, api.token).")(f)


def db_url_option(f: F) -> F:
    return click.option("--db-url", default=None, envvar="LEDGER_NET_DB_URL", metavar="URL",
                        help="A database URL instead of the data directory's SQLite file "
                             "(e.g. postgresql+psycopg://user:pw@127.0.0.1/ledger).")(f)


def passphrase_option(f: F) -> F:
    return click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                        metavar="FILE",
                        help="File holding the passphrase of a sealed node.key (one line). Else "
                             "$LEDGER_NET_KEY_PASSPHRASE (removed from the environment once read), "
                             "else a hidden prompt on a terminal.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def url_option(f: F) -> F:
    f = click.option("--token", default=None, envvar="LEDGER_NET_API_TOKEN", metavar="TOKEN",
                     help="The node's API token (default: read from DATA_DIR/api.token).")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_DATA_DIR,
                     envvar="LEDGER_NET_DATA_DIR", show_default="$LEDGER_NET_DATA_DIR or ~/.ledger_net",
                     help="Where to find the node's api.token.")(f)
    return click.option("--url", default=DEFAULT_URL, envvar="LEDGER_NET_URL", show_default=True,
                        callback=_check_url, help="The running node to talk to.")(f)


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A node URL names its scheme: 'localhost:5871' alone would fail later with a cryptic error."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        hint = f"; did you mean http://{value}?" if "://" not in value else ""
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL{hint}")
    return value


# ------------------------------------------------------------------ output

def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode("utf-8")


def emit_json(value: Any) -> None:
    click.echo(dumps(value))


def credits(units: int | None, decimals: int) -> str:
    """Base units as a credit amount with every decimal (exact, no float rounding)."""
    if units is None:
        return "-"
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), 10 ** decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}" if decimals else f"{sign}{whole}"


def short(text: str | None, n: int = 12) -> str:
    if not text:
        return "-"
    return text if len(text) <= n else text[:n] + "…"


def warn(message: str) -> None:
    click.echo(message, err=True)


@contextlib.contextmanager
def progress(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; otherwise silent. Yields `tick(n)`."""
    if length <= 0 or not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


# ------------------------------------------------------------------ ledgers

def node_config(data_dir: Path) -> dict[str, Any]:
    """What `init` remembered in the data dir (empty if nothing); a damaged file is one CliError."""
    from .ledger.datadir import DataDir

    path = DataDir(data_dir).config
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path} is not readable JSON ({exc}); fix or remove it") from None
    if not isinstance(config, dict):
        raise CliError(f"{path} must hold a JSON object")
    return config


def remember(data_dir: Path, **values: Any) -> None:
    """Add values to the data dir's node.json (0600: a database URL may carry a password)."""
    config = {**node_config(data_dir), **{k: v for k, v in values.items() if v is not None}}
    from .ledger.datadir import DataDir

    path = DataDir(data_dir).config
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(config, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def books_url(data_dir: Path, db_url: str | None) -> str | None:
    """--db-url if given, else the URL `init --db-url` remembered for this data dir, else None."""
    if db_url:
        return db_url
    remembered = node_config(data_dir).get("database_url")
    return remembered if isinstance(remembered, str) and remembered else None


def db_url_of(data_dir: Path, db_url: str | None) -> str:
    """The ledger's database URL; CliError if the data directory holds none."""
    db_url = books_url(data_dir, db_url)
    if db_url:
        return db_url
    from .ledger.datadir import DataDir

    books = DataDir(data_dir)
    if not books.database.exists():
        raise CliError(f"no ledger at {books.database}: give --data-dir (or $LEDGER_NET_DATA_DIR) or --db-url")
    return books.database_url()


def open_url(url: str, identity: Any = None) -> Any:
    """A Ledger on a database URL; a URL that cannot be opened is one CliError (password hidden)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .ledger.chain import Ledger

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        shown = url.split("@")[-1]
    try:
        return Ledger.open(url, identity)
    except SQLAlchemyError as exc:
        detail = " ".join(str(exc).split("\n")[0].split())
        raise CliError(f"cannot open the database {shown}: {detail}") from None


def open_ledger(data_dir: Path, db_url: str | None) -> Any:
    """Open an existing ledger to read it (the node's key if present; none is created).
    A sealed key is read as its public key only: reading needs no passphrase."""
    from .ledger.identity import KEY_FILE, Identity

    url = db_url_of(data_dir, db_url)
    identity = Identity.public_of(data_dir) if (data_dir / KEY_FILE).exists() else None
    return open_url(url, identity)


# ------------------------------------------------------------------ the key's passphrase

def key_passphrase(data_dir: Path, passphrase_file: Path | None, *, creating: bool = False,
                   prompt: bool = True, required: bool = True) -> Any:
    """The passphrase of a command that signs: --passphrase-file, else $LEDGER_NET_KEY_PASSPHRASE,
    else (for a sealed key, or `creating` one) a hidden prompt when stdin is a terminal.

    The environment variable is removed whenever this runs, used or not, so no child process
    (the sandboxed workers included) inherits it. None for a plain key given nothing, or when
    not `required`; else CliError for a sealed key (or `creating`) with no way to ask."""
    from .ledger.identity import (
        KEY_FILE,
        PASSPHRASE_ENV,
        Passphrase,
        is_sealed,
        passphrase_from_env,
        passphrase_from_file,
    )

    from_env = passphrase_from_env()
    if passphrase_file is not None:
        return passphrase_from_file(passphrase_file)
    if from_env is not None:
        return from_env
    if not required or not (creating or is_sealed(data_dir)):
        return None
    if prompt and sys.stdin.isatty():
        what = "New passphrase for node.key" if creating else f"Passphrase of {data_dir / KEY_FILE}"
        return Passphrase(click.prompt(what, hide_input=True, confirmation_prompt=creating, err=True))
    where = f"--passphrase-file FILE or ${PASSPHRASE_ENV}" + (" (or run on a terminal)" if prompt else "")
    if creating:
        raise CliError(f"--encrypt-key needs a passphrase: give {where}")
    raise CliError(f"{data_dir / KEY_FILE} is sealed: give {where}")


# ------------------------------------------------------------------ HTTP

def token_of(token: str | None, data_dir: Path | None) -> str | None:
    """The token to send: `--token`, else the one in DATA_DIR/api.token (state-changing
    control routes need it even on loopback)."""
    from .network.auth import read_token

    return token or read_token(data_dir)


def run(coro: Any) -> Any:
    """Run one coroutine to completion (each command owns its event loop)."""
    return asyncio.run(coro)


def http(url: str, token: str | None, method: str, path: str, *, params: dict[str, Any] | None = None,
         body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request to a running node; NetworkError (one line) on failure."""
    from .network.client import PeerClient

    async def go() -> Any:
        async with PeerClient(url, token=token, timeout=timeout) as client:
            return await client.request(method, path, params=params, body=body)

    return run(go())


def call(url: str, token: str | None, data_dir: Path | None, method: str, path: str, **kwargs: Any) -> Any:
    """`http` with the token each HTTP command sends: `--token`, else DATA_DIR/api.token."""
    return http(url, token_of(token, data_dir), method, path, **kwargs)
