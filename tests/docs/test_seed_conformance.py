"""The seed's API contract, to the letter: a walk over tests/docs/seed/api-reference.ru.md, a verbatim
copy of the user's contract (shared/seed/api-reference.ru.md beside the checkout).

Every class and method the seed declares must exist here with the same parameter names, in the
same order, with the same defaults and the same sync/async kind; every import line must work with
``src.`` read as ``ledger_net.``; and every WebSocket message shape the seed shows must come out of
a running node with the same keys and value types. The test fails as soon as either side drifts.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork
from ledger_net.sandbox.bundle import CodeBundle

SEED = Path(__file__).resolve().parent / "seed" / "api-reference.ru.md"
ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "seed" / "api-reference.ru.md"

CLASSES = {
    "ComputeNetwork": "ledger_net.main:ComputeNetwork",
    "Node": "ledger_net.core.node:Node",
    "Task": "ledger_net.core.task:Task",
    "Credits": "ledger_net.core.credits:Credits",
    "Reputation": "ledger_net.core.reputation:Reputation",
}
MISSING = object()


def seed_text() -> str:
    assert SEED.is_file(), f"the seed is not at {SEED}"
    return SEED.read_text(encoding="utf-8")


def seed_blocks() -> list[tuple[str | None, str]]:
    """(class of the section, code) for every python block of the seed."""
    section: str | None = None
    out = []
    for m in re.finditer(r"^(##+ [^\n]*)$|^```python\n(.*?)^```", seed_text(), re.S | re.M):
        if m.group(1):
            if m.group(1).startswith("## "):
                named = re.search(r"\((\w+)\)", m.group(1))
                section = named.group(1) if named else None
            continue
        out.append((section, m.group(2)))
    return out


def seed_methods() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    methods = []
    for section, code in seed_blocks():
        if section not in CLASSES:
            continue
        for node in ast.parse(code).body:
            if isinstance(node, ast.ClassDef):
                methods += [(section, f) for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    (node.args.args and node.args.args[0].arg in ("self", "cls")) or node.name.startswith("create_")):
                methods.append((section, node))
    return methods


def resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def seed_params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, Any]]:
    args = fn.args.args
    defaults = [MISSING] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    out = []
    for arg, default in zip(args, defaults, strict=False):
        if arg.arg in ("self", "cls"):
            continue
        if default is MISSING:
            out.append((arg.arg, MISSING))
            continue
        try:
            out.append((arg.arg, ast.literal_eval(default)))
        except ValueError:  # a name such as TaskPriority.NORMAL: compared in our module's namespace
            out.append((arg.arg, Expression(ast.unparse(default))))
    return out


class Expression(str):
    """A default the seed writes as an expression, not a literal."""


def test_the_copy_is_the_seed_where_the_seed_is_at_hand() -> None:
    if ORIGINAL.is_file():  # on a developer's machine; a CI clone has only the copy
        assert ORIGINAL.read_bytes() == SEED.read_bytes(), "tests/docs/seed/ is out of date: copy the seed again"
    assert "ComputeNetwork" in seed_text()


def test_the_seed_declares_what_this_test_walks() -> None:
    methods = seed_methods()
    assert len(methods) >= 60, len(methods)
    assert {c for c, _ in methods} == set(CLASSES)


@pytest.mark.parametrize("section,fn", seed_methods(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_each_seed_method_exists_with_its_parameters_and_defaults(section: str,
                                                                  fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    cls = resolve(CLASSES[section])
    ours = getattr(cls, fn.name, None)
    assert ours is not None, f"{section}.{fn.name} is missing"
    if fn.name != "__init__":
        assert inspect.iscoroutinefunction(ours) == isinstance(fn, ast.AsyncFunctionDef), \
            f"{section}.{fn.name}: the seed's is {'async' if isinstance(fn, ast.AsyncFunctionDef) else 'sync'}"
    params = [p for p in inspect.signature(ours).parameters.values() if p.name not in ("self", "cls")]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    wanted = seed_params(fn)
    assert [p.name for p in positional[:len(wanted)]] == [name for name, _ in wanted], \
        f"{section}.{fn.name}: parameters {[p.name for p in positional]} vs the seed's {wanted}"
    for (name, default), param in zip(wanted, positional, strict=False):
        if default is MISSING:
            assert param.default is inspect.Parameter.empty or fn.name.startswith("create_"), \
                f"{section}.{fn.name}({name}) is required in the seed"
        else:
            if isinstance(default, Expression):
                default = eval(default, vars(inspect.getmodule(cls)))  # noqa: S307 - the seed's own text
            assert param.default == default, f"{section}.{fn.name}({name}={param.default!r}), seed: {default!r}"
    extra = [p for p in positional[len(wanted):] if p.default is inspect.Parameter.empty]
    assert not extra, f"{section}.{fn.name} requires more than the seed: {[p.name for p in extra]}"


def test_every_seed_import_line_works() -> None:
    lines = set()
    for _, code in seed_blocks():
        for node in ast.parse(code).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("src", "sandbox"):
                module = node.module.replace("src.", "ledger_net.", 1) if node.module.startswith("src.") \
                    else "ledger_net." + node.module
                lines |= {(module, alias.name) for alias in node.names}
    assert len(lines) >= 8, lines
    for module, name in sorted(lines):
        assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


def seed_messages() -> dict[str, dict[str, Any]]:
    """The WebSocket message shapes of the seed's "WebSocket события" block, by type."""
    shapes = {}
    for _, code in seed_blocks():
        tree = ast.parse(code)
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Dict):
                value = ast.literal_eval(node.value)
                shapes[value["type"]] = value
    return shapes


def assert_same_shape(seed: Any, ours: Any, where: str) -> None:
    if isinstance(seed, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} is not an object"
        for key, value in seed.items():
            if where.endswith(".metrics") or where.endswith(".capabilities") or key not in ("node_id", "task_id"):
                assert key in ours, f"{where}.{key} is missing from {sorted(ours)}"
                assert_same_shape(value, ours[key], f"{where}.{key}")
    elif isinstance(seed, float):
        assert isinstance(ours, float), f"{where} is {ours!r}, the seed's is a float"
    elif isinstance(seed, str):
        assert isinstance(ours, str), f"{where} is {ours!r}, the seed's is a string"


async def test_every_seed_websocket_message_shape_comes_out_of_a_node(tmp_path: Path) -> None:
    shapes = seed_messages()
    assert set(shapes) == {"task_update", "network_update", "node_update", "error"}, set(shapes)
    net = ComputeNetwork(port=0, data_dir=tmp_path / "n", initial_credits=100.0, workers=1)
    await net.start()
    got: dict[str, dict[str, Any]] = {}
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{net.server.url}/ws") as ws:
            for topic in ("task_updates", "network_update", "node_update"):
                await ws.send_json({"type": "subscribe", "event": topic})
            acks: list[str] = []
            while len(acks) < 3:  # the node runs on this loop: act only once it has subscribed us
                data = orjson.loads((await ws.receive(timeout=30)).data)
                if data["type"] == "subscribed":
                    acks.append(data["event"])
                elif data["type"] in shapes:
                    got.setdefault(data["type"], data)
            # A failing code task: task updates, then the seed's error message for it.
            failing = Task.create_code(net.ledger.node_id, CodeBundle("boom.py", "raise SystemExit(3)\n"),
                                       {"timeout_seconds": 5}, {"max_price": 1.0})
            await net.submit_task(failing.to_dict())
            net.node.update_capabilities({"cpu_score": 2.0, "ram_gb": 1.0})
            deadline = time.monotonic() + 60
            while set(got) != set(shapes) and time.monotonic() < deadline:
                msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = orjson.loads(msg.data)
                if data.get("type") in shapes and (data["type"] != "error"
                                                   or data["details"].get("error_code") == "EXECUTION_FAILED"):
                    got.setdefault(data["type"], data)
    finally:
        await net.stop()
    assert set(got) == set(shapes), f"never received: {set(shapes) - set(got)}"
    for kind, seed in shapes.items():
        assert_same_shape(seed, got[kind], kind)
    assert got["error"]["details"]["task_id"] and got["error"]["details"]["error_message"]
    assert "name" not in got["node_update"] or got["node_update"]["name"] is not None
    assert "url" not in got["node_update"] or got["node_update"]["url"] is not None
