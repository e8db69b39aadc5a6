"""Commands that lead somewhere (issue 15 item 2): every hint works as printed, and a key with
empty books never founds a second network behind the operator's back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger_net.cli import cli
from ledger_net.errors import NodeError
from ledger_net.ledger.store import sqlite_url
from ledger_net.main import ComputeNetwork

pytestmark = pytest.mark.timeout(120)


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_init_with_a_database_url_prints_a_hint_that_works_as_printed(tmp_path: Path) -> None:
    books = tmp_path / "elsewhere" / "books.db"
    books.parent.mkdir()
    data_dir = tmp_path / "pg-node"
    code, out = invoke("init", "--data-dir", data_dir, "--db-url", sqlite_url(books), "--initial-credits", "5")
    assert code == 0, out
    hint = re.search(r"run it: (ledger-net node .*)$", out, re.M)
    assert hint, out
    config = data_dir / "node.json"
    assert config.stat().st_mode & 0o777 == 0o600  # a database URL may carry a password
    # Run the hint as printed: the node must open the books init wrote, not found a new network.
    argv = hint.group(1).split()[1:] + ["--port", "0", "--log-level", "WARNING"]
    proc = subprocess.Popen([sys.executable, "-m", "ledger_net.cli", *argv], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(("ready ", "error:")):
                break
        assert lines and lines[-1].startswith("ready "), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not (data_dir / "ledger.db").exists(), "the node founded a second network in a new SQLite file"
    # Offline commands find the same books through the remembered URL.
    code, out = invoke("verify", "--data-dir", data_dir, "--json")
    assert code == 0 and '"ok": true' in out, out


async def test_a_key_with_empty_books_does_not_found_a_new_network(tmp_path: Path) -> None:
    data_dir = tmp_path / "n"
    first = ComputeNetwork(port=0, data_dir=data_dir, initial_credits=3.0, workers=1)
    await first.start()
    node_id, net = first.ledger.node_id, first.ledger.net
    await first.stop()
    (data_dir / "ledger.db").rename(tmp_path / "moved.db")  # the books are elsewhere now
    for suffix in ("-wal", "-shm"):
        (data_dir / f"ledger.db{suffix}").unlink(missing_ok=True)
    again = ComputeNetwork(port=0, data_dir=data_dir, initial_credits=3.0, workers=1)
    with pytest.raises(NodeError, match="has no books.*--db-url.*--new-network"):
        await again.start()
    # Pointed at its books, it is the same node on the same network.
    found = ComputeNetwork(port=0, data_dir=data_dir, database_url=sqlite_url(tmp_path / "moved.db"), workers=1)
    await found.start()
    try:
        assert (found.ledger.node_id, found.ledger.net) == (node_id, net)
    finally:
        await found.stop()
    # And only when asked, a new network under the same key.
    fresh = ComputeNetwork(port=0, data_dir=data_dir, initial_credits=3.0, workers=1, new_network=True)
    await fresh.start()
    try:
        assert fresh.ledger.node_id == node_id and fresh.ledger.net != net
    finally:
        await fresh.stop()


def test_the_cli_node_refuses_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "n"
    code, out = invoke("init", "--data-dir", data_dir)
    assert code == 0, out
    (data_dir / "ledger.db").unlink()
    proc = subprocess.run([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(data_dir),
                           "--port", "0"], capture_output=True, text=True, timeout=60)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1 and "--new-network" in errors[0], proc.stderr[-2000:]


def test_a_url_without_scheme_says_so() -> None:
    code, out = invoke("balance", "--url", "localhost:5871")
    assert code != 0 and "did you mean http://localhost:5871" in out, out


def test_a_negative_amount_gets_the_amount_error() -> None:
    code, out = invoke("transfer", "someone", "-1", "--url", "http://127.0.0.1:9")
    assert code != 0 and "amount must be positive" in out and "No such option" not in out, out


def test_submit_help_shows_the_default_budget() -> None:
    code, out = invoke("submit", "range_reduce", "--help")
    assert code == 0 and "1.0 credit" in out, out


def test_node_type_is_checked() -> None:
    from ledger_net.core.node import Node

    with pytest.raises(NodeError, match="node_type must be one of client, public, seed"):
        Node("n1", "127.0.0.1", 5000, node_type="weird")


async def test_a_budget_below_every_quote_says_by_how_much(tmp_path: Path) -> None:
    import asyncio

    from ledger_net.core.task import Task

    net = ComputeNetwork(port=0, data_dir=tmp_path / "n", initial_credits=100.0, workers=1)
    await net.start()
    try:
        task = Task.create_range_reduce(net.ledger.node_id, 1, 2_000_000_000, "sum", {}, {"max_price": 0.000001})
        task_id = await net.submit_task(task.to_dict())
        for _ in range(600):
            status = await net.get_task_status(task_id)
            if status["status"] in ("failed", "completed"):
                break
            await asyncio.sleep(0.05)
        assert status["status"] == "failed", status
        assert re.search(r"budget is short: .* a max_price of at least [0-9.]+ credits", status["error"]), status
        assert status["refund"] == status["escrow"]
    finally:
        await net.stop()
