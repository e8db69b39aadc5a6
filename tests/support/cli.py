"""Helpers of the CLI tests: `invoke` runs `ledger-net` with click's CliRunner, and the
checks of its output (a node for it to talk to is tests.support.nodes.NodeThread)."""

from __future__ import annotations

from typing import Any

import orjson
from click.testing import CliRunner, Result

from ledger_net.cli import cli


def invoke(*args: Any, env: dict[str, str] | None = None, input: Any = None) -> Result:
    """Run `ledger-net ARGS…` in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input, catch_exceptions=False)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str, code: int = 2) -> str:
    """The failure contract: exit status `code`, one `error: …` line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
