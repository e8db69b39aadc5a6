"""`ledger-net` against running nodes: init (found / join through a seed), node (a real
subprocess stopped by SIGTERM), and the HTTP commands — submit of every task type with
--wait, status, result, cancel, balance, transfer, nodes, events (tail and --follow)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ledger_net.compute.ml import save_model
from ledger_net.ledger.identity import Identity
from tests.support.cli import NodeThread, assert_one_line_error, invoke, json_of

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    n = NodeThread(tmp_path_factory.mktemp("cli-node") / "n").start()
    with pytest.MonkeyPatch.context() as env:
        # the work commands send the node's token from DATA_DIR/api.token, as an operator's would
        env.setenv("LEDGER_NET_DATA_DIR", str(n.network.data_dir))
        yield n
    n.stop()


def run(node: NodeThread, *args: Any) -> Any:
    """A JSON command against the node, which must succeed."""
    return json_of(invoke(*args, "--url", node.url, "--json"))


# ------------------------------------------------------------------ submit, every type

def test_submit_range_reduce_and_map(node: NodeThread) -> None:
    done = run(node, "submit", "range_reduce", "--start", 1, "--end", 1000, "--operation", "sum", "--max-price",
               0.2, "--chunk-size", 250, "--priority", "high", "--wait")
    assert done["status"]["status"] == "completed" and done["result"] == 500500
    assert done["status"]["chunks_total"] == 4
    human = invoke("submit", "map", "--data", "[1,2,3]", "--operation", "square", "--wait", "--url", node.url)
    assert human.exit_code == 0, human.stderr
    assert orjson.loads(human.stdout) == [1, 4, 9] and "completed" in human.stderr
    created = run(node, "submit", "map_reduce", "--data", "[1,2,3,4]", "--map-operation", "square",
                  "--reduce-operation", "sum", "--replicas", 1, "--task-id", "task-cli-mr")
    assert created["task_id"] == "task-cli-mr"
    status = run(node, "status", "task-cli-mr", "--wait", "--wait-timeout", 60)
    assert status["status"] == "completed"
    assert run(node, "result", "task-cli-mr") == {"task_id": "task-cli-mr", "status": "completed", "result": 30}
    plain = invoke("result", "task-cli-mr", "--url", node.url)
    assert plain.exit_code == 0 and orjson.loads(plain.stdout) == 30


def test_submit_matrix_and_ml(node: NodeThread, tmp_path: Path) -> None:
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    done = run(node, "submit", "matrix_ops", "--a", tmp_path / "a.npy", "--b", tmp_path / "b.npy", "--operation",
               "multiply", "--wait")
    assert done["result"] == (a @ b).tolist()

    weights = {"W": [[1.0], [2.0]], "b": [0.5]}
    save_model(tmp_path / "m.npz", weights)
    (tmp_path / "inputs.json").write_text("[[1, 1], [2, 0]]")
    done = run(node, "submit", "ml_inference", "--model", tmp_path / "m.npz", "--inputs", tmp_path / "inputs.json",
               "--wait")
    assert done["status"]["status"] == "completed"
    assert np.allclose(done["result"]["predictions"], [3.5, 2.5])  # X @ W + b

    (tmp_path / "train.json").write_text(orjson.dumps({"X": [[1, 0], [0, 1]], "y": [1.0, 2.0]}).decode())
    done = run(node, "submit", "ml_train_step", "--model", tmp_path / "m.npz", "--data", "@" + str(
        tmp_path / "train.json"), "--learning-rate", 0.05, "--wait")
    assert done["status"]["status"] == "completed" and done["result"] is not None


def test_submit_code(node: NodeThread, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sum(int(a) for a in sys.argv[1:]), sys.stdin.read().strip())\n")
    done = run(node, "submit", "code", "--entry", "script.py", "--file", script, "--arg", 2, "--arg", 40,
               "--stdin", "hello", "--timeout-seconds", 20, "--wait")
    assert done["status"]["status"] == "completed", done
    result = done["result"]
    stdout = result[0]["stdout"] if isinstance(result, list) else result["stdout"]
    assert stdout.strip() == "42 hello"


def test_submit_errors_are_one_line(node: NodeThread, tmp_path: Path) -> None:
    url = ("--url", node.url)
    assert_one_line_error(invoke("submit", "map", "--data", "[1,", "--operation", "square", *url), "--data",
                          "not valid JSON")
    assert_one_line_error(invoke("submit", "map", "--data", "[1]", "--operation", "square", "--max-price", 10**6,
                                 *url), "402", "insufficient_credits")
    assert_one_line_error(invoke("submit", "map", "--data", "[1]", "--operation", "levitate", *url), "invalid_task")
    assert_one_line_error(invoke("submit", "matrix_ops", "--a", tmp_path / "no.npy", "--operation", "transpose",
                                 *url), "no file")
    assert_one_line_error(invoke("submit", "ml_inference", "--model", tmp_path / "no.npz", "--inputs", "[[1]]",
                                 *url), "--model")
    assert_one_line_error(invoke("submit", "code", "--entry", "main.py", *url), "--entry")
    assert_one_line_error(invoke("submit", "range_reduce", "--start", 1, *url), "Missing option '--end'")
    assert_one_line_error(invoke("submit", "teleport", *url), "No such command")
    assert_one_line_error(invoke("status", "task-nope", *url), "404", "unknown_task")
    assert_one_line_error(invoke("status", "x", "--url", "http://127.0.0.1:9"), "unreachable")


# ------------------------------------------------------------------ tasks, money, nodes, events

def test_status_cancel_balance_transfer_nodes(node: NodeThread) -> None:
    task_id = run(node, "submit", "range_reduce", "--start", 1, "--end", 10, "--operation", "sum", "--wait")["task_id"]
    human = invoke("status", task_id, "--url", node.url)
    assert human.exit_code == 0 and "completed (100%)" in human.stdout
    listed = run(node, "status", "all")
    assert task_id in [t["task_id"] for t in listed["tasks"]]
    cancelled = run(node, "cancel", task_id)
    assert cancelled["cancelled"] is False and cancelled["status"] == "completed"
    assert "nothing to cancel" in invoke("cancel", task_id, "--url", node.url).stdout

    before = run(node, "balance")
    assert before["node_id"] == node.node_id and before["conservation_ok"]
    other = Identity.generate().node_id
    sent = run(node, "transfer", other, "1.25")
    assert sent["kind"] == "transfer" and sent["balance"] == pytest.approx(before["balance"] - 1.25)
    assert run(node, "balance", other)["incoming"] == 1.25
    human = invoke("balance", "--url", node.url)
    assert human.exit_code == 0 and "spendable" in human.stdout
    voucher = invoke("transfer", "dave", "0.5", "--url", node.url)
    assert voucher.exit_code == 0 and "voucher" in voucher.stdout
    assert_one_line_error(invoke("transfer", other, "1000000", "--url", node.url), "insufficient")
    assert_one_line_error(invoke("transfer", other, "abc", "--url", node.url), "not a number")
    assert_one_line_error(invoke("balance", Identity.generate().node_id, "--url", node.url), "unknown_account")

    listed = run(node, "nodes")
    assert [n["node_id"] for n in listed["nodes"]] == [node.node_id] and listed["nodes"][0]["is_self"]
    assert "self" in invoke("nodes", "--url", node.url).stdout


def test_events_tail_and_follow(node: NodeThread) -> None:
    run(node, "submit", "range_reduce", "--start", 1, "--end", 10, "--operation", "sum", "--wait")
    tail = run(node, "events", "-n", 3)
    offsets = [e["offset"] for e in tail["events"]]
    assert len(offsets) == 3 and offsets[-1] == tail["last_offset"]
    human = invoke("events", "-n", 5, "--type", "task.", "--url", node.url)
    assert human.exit_code == 0 and all(" task." in line for line in human.stdout.splitlines())
    followed = invoke("events", "--follow", "--after", 1, "--count", 4, "--json", "--url", node.url)
    assert followed.exit_code == 0, followed.stderr
    items = [orjson.loads(line) for line in followed.stdout.splitlines()]
    assert [i["offset"] for i in items] == [2, 3, 4, 5] and all(i["valid"] for i in items)
    first = orjson.loads(items[0]["raw"])
    assert first["type"] == "credit.minted"
    shown = invoke("events", "--follow", "--after", 0, "--count", 1, "--url", node.url)
    assert shown.stdout.startswith("#1 network.genesis")


# ------------------------------------------------------------------ init and node

def test_init_founds_and_joins(node: NodeThread, tmp_path: Path) -> None:
    founded = json_of(invoke("init", "--data-dir", tmp_path / "f", "--initial-credits", 50, "--name", "lab", "--json"))
    assert founded["events"] == 2 and founded["balance"] == "50.000000" and founded["network_name"] == "lab"
    assert (tmp_path / "f" / "node.key").exists() and (tmp_path / "f" / "api.token").exists()
    assert json_of(invoke("verify", "--data-dir", tmp_path / "f", "--json"))["ok"]
    assert_one_line_error(invoke("init", "--data-dir", tmp_path / "f"), "already belongs to network")

    joined = json_of(invoke("init", "--data-dir", tmp_path / "j", "--seed", node.url, "--json"))
    assert node.network is not None and node.network.ledger is not None
    assert joined["net"] == node.network.ledger.net and joined["synced"] >= 2 and joined["balance"] == "0.000000"
    assert orjson.loads((tmp_path / "j" / "node.json").read_bytes()) == {"seed_nodes": [node.url]}
    assert_one_line_error(invoke("init", "--data-dir", tmp_path / "k", "--seed", "http://127.0.0.1:9"),
                          "unreachable")


class LineReader:
    """Collects a subprocess's stderr lines on a thread, so waits for a line are bounded
    (select() on a buffered pipe misses lines already read into the buffer)."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} from the node: {''.join(self.seen)}")


def test_node_runs_in_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(tmp_path / "n"),
                             "--port", "0", "--initial-credits", "7", "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        reader = LineReader(proc.stderr)
        url = reader.until("ready ", 60).split("ready ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert run_url(url, "balance")["balance"] == 7.0
        proc.send_signal(signal.SIGTERM)
        reader.until("stopped", 30)
        assert proc.wait(timeout=30) == 0, "".join(reader.seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert json_of(invoke("audit", "--data-dir", tmp_path / "n", "--json"))["ok"]
    assert_one_line_error(invoke("node", "--port", "70000", "--data-dir", tmp_path / "x"), "--port")


def run_url(url: str, *args: Any) -> Any:
    return json_of(invoke(*args, "--url", url, "--json"))


# ------------------------------------------------------------------ the HTTP routes the commands use, documented

def test_http_api_doc_lists_every_route_the_node_serves(node: NodeThread) -> None:
    """docs/http-api.md names every route of the running node's router, and no route it
    does not serve (the work commands above and integrators read it)."""
    import re

    assert node.network is not None and node.network.server is not None and node.network.server.app is not None
    served = {(r.method, r.resource.canonical) for r in node.network.server.app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert ("POST", "/api/v1/tasks") in served and ("GET", "/metrics") in served
    doc = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text(encoding="utf-8")
    missing = sorted(r for r in served if not re.search(re.escape(f"`{r[0]} {r[1]}") + r"[`?]", doc))
    assert not missing, f"docs/http-api.md does not document {missing}"
    documented = set(re.findall(r"`(GET|POST|DELETE|PUT|PATCH) (/[^`?\s]*)", doc))
    assert not documented - served, f"docs/http-api.md documents routes the node does not serve: " \
                                    f"{sorted(documented - served)}"
