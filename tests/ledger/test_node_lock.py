"""One live process per node (ledger/lock.py): a second start on a node's data dir or
database is refused with one line naming the holder's pid and URL, a kill -9 leaves no
stale lock, and the read-only commands still work beside a running node."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ledger_net.errors import NodeError, NodeLockedError
from ledger_net.ledger.lock import LOCK_FILE, NodeLock
from ledger_net.ledger.store import Store, sqlite_url
from ledger_net.main import ComputeNetwork
from tests.support.cli import assert_one_line_error, invoke, json_of
from tests.support.nodes import NodeThread
from tests.support.processes import LineReader

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_node(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], LineReader, str]:
    """`ledger-net node` in a real process, waited for until its ready line."""
    proc = subprocess.Popen([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(data_dir),
                             "--port", "0", "--log-level", "WARNING", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    reader = LineReader(proc.stderr)
    try:
        url = reader.until("ready ", 60).split("ready ", 1)[1].strip()
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc, reader, url


def refused_start(data_dir: Path, *extra: str) -> str:
    """A second `ledger-net node` that must exit at once with one `error:` line; returns it."""
    done = subprocess.run([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(data_dir),
                           "--port", "0", "--log-level", "WARNING", *extra],
                          capture_output=True, text=True, env=ENV, timeout=30)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ------------------------------------------------------------------ the lock itself

def test_second_lock_on_a_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = NodeLock(tmp_path / "d").acquire()
    store = Store.open(sqlite_url(tmp_path / "d" / "ledger.db"))
    try:
        with pytest.raises(NodeLockedError, match=rf"pid {os.getpid()} on .*still starting"):
            NodeLock(tmp_path / "d").acquire()
        first.record(store, "ab" * 32, "http://127.0.0.1:5999")
        with pytest.raises(NodeLockedError) as refused:
            NodeLock(tmp_path / "d").acquire()
        assert f"pid {os.getpid()}" in str(refused.value) and "http://127.0.0.1:5999" in str(refused.value)
        assert "\n" not in str(refused.value)
    finally:
        first.release()
        store.close()
    NodeLock(tmp_path / "d").acquire().release()  # released: free again
    assert (tmp_path / "d" / LOCK_FILE).read_text() == ""  # and no holder is named any more


def test_a_sqlite_file_outside_the_data_dir_is_claimed_too(tmp_path: Path) -> None:
    """Two data dirs (one key copied) on one SQLite file: the second is refused."""
    url = sqlite_url(tmp_path / "shared.db")
    first = NodeLock(tmp_path / "a").acquire()
    first.claim(url)
    try:
        second = NodeLock(tmp_path / "b").acquire()
        with pytest.raises(NodeLockedError, match=rf"database .*shared.db is in use .*pid {os.getpid()}"):
            second.claim(url)
        second.release()
    finally:
        first.release()
    again = NodeLock(tmp_path / "b").acquire()
    again.claim(url)
    again.release()


def test_an_unreachable_database_is_one_clear_error_and_no_lock_is_left(tmp_path: Path) -> None:
    lock = NodeLock(tmp_path / "d").acquire()
    with pytest.raises(NodeError, match=r"cannot open the database postgresql\+psycopg://ledger:\*\*\*@127.0.0.1:9/x"):
        lock.claim("postgresql+psycopg://ledger:secret@127.0.0.1:9/x")
    lock.release()
    NodeLock(tmp_path / "d").acquire().release()


def test_postgres_database_is_claimed_and_freed_with_its_connection(pg_db_url: str, tmp_path: Path) -> None:
    store = Store.open(pg_db_url)  # migrated: node_holders exists
    first = NodeLock(tmp_path / "a").acquire()
    first.claim(pg_db_url)
    try:
        first.record(store, "cd" * 32, "http://127.0.0.1:6001")
        second = NodeLock(tmp_path / "b").acquire()
        with pytest.raises(NodeLockedError) as refused:
            second.claim(pg_db_url)
        second.release()
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and "http://127.0.0.1:6001" in message
        assert "***" in message or "ledger:" not in message  # the password is hidden
    finally:
        first.release()
        store.close()
    again = NodeLock(tmp_path / "b").acquire()
    again.claim(pg_db_url)
    again.release()


# ------------------------------------------------------------------ ComputeNetwork (Python API)

def test_compute_network_refuses_a_second_start_on_its_data_dir(tmp_path: Path) -> None:
    node = NodeThread(tmp_path / "n").start()
    try:
        other = ComputeNetwork(host="127.0.0.1", port=0, data_dir=tmp_path / "n", log_level="WARNING")
        with pytest.raises(NodeLockedError) as refused:
            asyncio.run(other.start())
        assert f"pid {os.getpid()}" in str(refused.value) and node.url in str(refused.value)
        assert other.ledger is None and other.server is None
        assert node.call(lambda n: n.get_network_status())["node_id"] == node.node_id  # still serving
        assert invoke("init", "--data-dir", tmp_path / "n").exit_code == 2  # init signs too: refused
    finally:
        node.stop()
    again = NodeThread(tmp_path / "n").start()  # a clean stop released it
    again.stop()


# ------------------------------------------------------------------ ledger-net node (real processes)

def test_second_node_process_is_refused_and_a_kill9_leaves_no_stale_lock(tmp_path: Path) -> None:
    data = tmp_path / "n"
    proc, _, url = start_node(data, "--initial-credits", "5")
    try:
        line = refused_start(data)
        assert f"pid {proc.pid}" in line and url in line and str(data) in line, line
        assert_one_line_error(invoke("init", "--data-dir", data), f"pid {proc.pid}", url)
        kill9(proc)
        proc, _, url2 = start_node(data)  # accepted: the kernel dropped the dead holder's flock
        assert url2.startswith("http://127.0.0.1:")
        assert f"pid {proc.pid}" in refused_start(data)
    finally:
        stop(proc)


def test_read_only_commands_work_beside_a_running_node(tmp_path: Path) -> None:
    data = tmp_path / "n"
    proc, _, _ = start_node(data, "--initial-credits", "3")
    try:
        assert json_of(invoke("verify", "--data-dir", data, "--json"))["ok"]
        assert json_of(invoke("audit", "--data-dir", data, "--json"))["ok"]
        exported = invoke("export", "--data-dir", data)
        assert exported.exit_code == 0, exported.stderr
        rows = [orjson.loads(line) for line in exported.stdout.splitlines()]
        assert rows, "the founder's genesis and mint were exported"
        replayed = json_of(invoke("replay", "--data-dir", data, "--json"))
        assert replayed
        first_hash = rows[0]["hash"]
        assert json_of(invoke("inspect", first_hash, "--data-dir", data, "--json"))["hash"] == first_hash
        assert proc.poll() is None
    finally:
        stop(proc)


def test_two_data_dirs_on_one_postgres_database_with_one_key(pg_db_url: str, tmp_path: Path) -> None:
    """The same --db-url and key under two data dirs: refused while the first runs; a kill -9
    of the first frees the database (the server drops its connection's advisory lock)."""
    a, b = tmp_path / "a", tmp_path / "b"
    proc, _, url = start_node(a, "--db-url", pg_db_url, "--initial-credits", "2")
    try:
        b.mkdir()
        shutil.copy2(a / "node.key", b / "node.key")
        line = refused_start(b, "--db-url", pg_db_url)
        assert f"pid {proc.pid}" in line and url in line and "in use by a running node" in line, line
        kill9(proc)
        proc, _, _ = start_node(b, "--db-url", pg_db_url)
    finally:
        stop(proc)

