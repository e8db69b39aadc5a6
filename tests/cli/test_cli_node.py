"""`ledger-net` against running nodes: init (found / join through a seed), node (a real
subprocess stopped by SIGTERM), and the HTTP commands — submit of every task type with
--wait, status, result, cancel, balance, transfer, nodes, events (tail and --follow)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ledger_net.compute.ml import save_model
from ledger_net.ledger.identity import Identity
from tests.support.cli import assert_one_line_error, invoke, json_of
from tests.support.nodes import NodeThread
from tests.support.processes import LineReader

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def node_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeThread]:
    """One node for the module, named by LEDGER_NET_DATA_DIR while its tests run."""
    node = NodeThread(tmp_path_factory.mktemp("cli-node") / "n").start()
    with pytest.MonkeyPatch.context() as env:
        # the work commands send the node's token from DATA_DIR/api.token, as an operator's would
        assert node.network is not None
        env.setenv("LEDGER_NET_DATA_DIR", str(node.network.data_dir))
        yield node
    node.stop()


def run(node_thread: NodeThread, *args: Any) -> Any:
    """A JSON command against the node, which must succeed."""
    return json_of(invoke(*args, "--url", node_thread.url, "--json"))


# ------------------------------------------------------------------ submit, every type

def test_submit_range_reduce_and_map(node_thread: NodeThread) -> None:
    done = run(node_thread, "submit", "range_reduce", "--start", 1, "--end", 1000, "--operation", "sum", "--max-price",
               0.2, "--chunk-size", 250, "--priority", "high", "--wait")
    assert done["status"]["status"] == "completed" and done["result"] == 500500
    assert done["status"]["chunks_total"] == 4
    human = invoke("submit", "map", "--data", "[1,2,3]", "--operation", "square", "--wait", "--url", node_thread.url)
    assert human.exit_code == 0, human.stderr
    assert orjson.loads(human.stdout) == [1, 4, 9] and "completed" in human.stderr
    created = run(node_thread, "submit", "map_reduce", "--data", "[1,2,3,4]", "--map-operation", "square",
                  "--reduce-operation", "sum", "--replicas", 1, "--task-id", "task-cli-mr")
    assert created["task_id"] == "task-cli-mr"
    status = run(node_thread, "status", "task-cli-mr", "--wait", "--wait-timeout", 60)
    assert status["status"] == "completed"
    assert run(node_thread, "result", "task-cli-mr") == {"task_id": "task-cli-mr", "status": "completed", "result": 30}
    plain = invoke("result", "task-cli-mr", "--url", node_thread.url)
    assert plain.exit_code == 0 and orjson.loads(plain.stdout) == 30


def test_submit_matrix_and_ml(node_thread: NodeThread, tmp_path: Path) -> None:
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    done = run(node_thread, "submit", "matrix_ops", "--a", tmp_path / "a.npy", "--b", tmp_path / "b.npy", "--operation",
               "multiply", "--wait")
    assert done["result"] == (a @ b).tolist()

    weights = {"W": [[1.0], [2.0]], "b": [0.5]}
    save_model(tmp_path / "m.npz", weights)
    (tmp_path / "inputs.json").write_text("[[1, 1], [2, 0]]")
    done = run(node_thread, "submit", "ml_inference", "--model", tmp_path / "m.npz",
               "--inputs", tmp_path / "inputs.json", "--wait")
    assert done["status"]["status"] == "completed"
    assert np.allclose(done["result"]["predictions"], [3.5, 2.5])  # X @ W + b

    (tmp_path / "train.json").write_text(orjson.dumps({"X": [[1, 0], [0, 1]], "y": [1.0, 2.0]}).decode())
    done = run(node_thread, "submit", "ml_train_step", "--model", tmp_path / "m.npz", "--data", "@" + str(
        tmp_path / "train.json"), "--learning-rate", 0.05, "--wait")
    assert done["status"]["status"] == "completed" and done["result"] is not None


def test_submit_code(node_thread: NodeThread, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sum(int(a) for a in sys.argv[1:]), sys.stdin.read().strip())\n")
    done = run(node_thread, "submit", "code", "--entry", "script.py", "--file", script, "--arg", 2, "--arg", 40,
               "--stdin", "hello", "--timeout-seconds", 20, "--wait")
    assert done["status"]["status"] == "completed", done
    result = done["result"]
    stdout = result[0]["stdout"] if isinstance(result, list) else result["stdout"]
    assert stdout.strip() == "42 hello"


def test_submit_errors_are_one_line(node_thread: NodeThread, tmp_path: Path) -> None:
    url = ("--url", node_thread.url)
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

def test_status_cancel_balance_transfer_nodes(node_thread: NodeThread) -> None:
    task_id = run(node_thread, "submit", "range_reduce", "--start", 1, "--end", 10, "--operation", "sum",
                  "--wait")["task_id"]
    human = invoke("status", task_id, "--url", node_thread.url)
    assert human.exit_code == 0 and "completed (100%)" in human.stdout
    listed = run(node_thread, "status", "all")
    assert task_id in [t["task_id"] for t in listed["tasks"]]
    cancelled = run(node_thread, "cancel", task_id)
    assert cancelled["cancelled"] is False and cancelled["status"] == "completed"
    assert "nothing to cancel" in invoke("cancel", task_id, "--url", node_thread.url).stdout

    before = run(node_thread, "balance")
    assert before["node_id"] == node_thread.node_id and before["conservation_ok"]
    other = Identity.generate().node_id
    sent = run(node_thread, "transfer", other, "1.25")
    assert sent["kind"] == "transfer" and sent["balance"] == pytest.approx(before["balance"] - 1.25)
    assert run(node_thread, "balance", other)["incoming"] == 1.25
    human = invoke("balance", "--url", node_thread.url)
    assert human.exit_code == 0 and "spendable" in human.stdout
    voucher = invoke("transfer", "dave", "0.5", "--url", node_thread.url)
    assert voucher.exit_code == 0 and "voucher" in voucher.stdout
    assert_one_line_error(invoke("transfer", other, "1000000", "--url", node_thread.url), "insufficient")
    assert_one_line_error(invoke("transfer", other, "abc", "--url", node_thread.url), "not a number")
    assert_one_line_error(invoke("balance", Identity.generate().node_id, "--url", node_thread.url), "unknown_account")

    listed = run(node_thread, "nodes")
    assert [n["node_id"] for n in listed["nodes"]] == [node_thread.node_id] and listed["nodes"][0]["is_self"]
    assert "self" in invoke("nodes", "--url", node_thread.url).stdout


def test_events_tail_and_follow(node_thread: NodeThread) -> None:
    run(node_thread, "submit", "range_reduce", "--start", 1, "--end", 10, "--operation", "sum", "--wait")
    tail = run(node_thread, "events", "-n", 3)
    offsets = [e["offset"] for e in tail["events"]]
    assert len(offsets) == 3 and offsets[-1] == tail["last_offset"]
    human = invoke("events", "-n", 5, "--type", "task.", "--url", node_thread.url)
    assert human.exit_code == 0 and all(" task." in line for line in human.stdout.splitlines())
    followed = invoke("events", "--follow", "--after", 1, "--count", 4, "--json", "--url", node_thread.url)
    assert followed.exit_code == 0, followed.stderr
    items = [orjson.loads(line) for line in followed.stdout.splitlines()]
    assert [i["offset"] for i in items] == [2, 3, 4, 5] and all(i["valid"] for i in items)
    first = orjson.loads(items[0]["raw"])
    assert first["type"] == "credit.minted"
    shown = invoke("events", "--follow", "--after", 0, "--count", 1, "--url", node_thread.url)
    assert shown.stdout.startswith("#1 network.genesis")


# ------------------------------------------------------------------ init and node

def test_init_founds_and_joins(node_thread: NodeThread, tmp_path: Path) -> None:
    founded = json_of(invoke("init", "--data-dir", tmp_path / "f", "--initial-credits", 50, "--name", "lab", "--json"))
    assert founded["events"] == 2 and founded["balance"] == "50.000000" and founded["network_name"] == "lab"
    assert (tmp_path / "f" / "node.key").exists() and (tmp_path / "f" / "api.token").exists()
    assert json_of(invoke("verify", "--data-dir", tmp_path / "f", "--json"))["ok"]
    assert_one_line_error(invoke("init", "--data-dir", tmp_path / "f"), "already belongs to network")

    joined = json_of(invoke("init", "--data-dir", tmp_path / "j", "--seed", node_thread.url, "--json"))
    assert node_thread.network is not None and node_thread.network.ledger is not None
    assert joined["net"] == node_thread.network.ledger.net and joined["synced"] >= 2 and joined["balance"] == "0.000000"
    assert orjson.loads((tmp_path / "j" / "node.json").read_bytes()) == {"seed_nodes": [node_thread.url]}
    assert_one_line_error(invoke("init", "--data-dir", tmp_path / "k", "--seed", "http://127.0.0.1:9"),
                          "unreachable")


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

def test_http_api_doc_lists_every_route_the_node_serves(node_thread: NodeThread) -> None:
    """docs/http-api.md names every route of the running node's router, and no route it
    does not serve (the work commands above and integrators read it)."""
    import re

    network = node_thread.network
    assert network is not None and network.server is not None and network.server.app is not None
    served = {(r.method, r.resource.canonical) for r in network.server.app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert ("POST", "/api/v1/tasks") in served and ("GET", "/metrics") in served
    doc = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text(encoding="utf-8")
    missing = sorted(r for r in served if not re.search(re.escape(f"`{r[0]} {r[1]}") + r"[`?]", doc))
    assert not missing, f"docs/http-api.md does not document {missing}"
    documented = set(re.findall(r"`(GET|POST|DELETE|PUT|PATCH) (/[^`?\s]*)", doc))
    assert not documented - served, f"docs/http-api.md documents routes the node does not serve: " \
                                    f"{sorted(documented - served)}"
