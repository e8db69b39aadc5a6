"""docs/security.md links each guarantee to its test: every test it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def named_tests() -> list[tuple[str, str | None]]:
    text = (ROOT / "docs" / "security.md").read_text()
    refs = re.findall(r"`((?:tests/)?[\w/]*test_\w+\.py)(?:::(\w+))?", text)
    return [(path if path.startswith("tests/") else f"tests/{path}", name or None) for path, name in refs]


def test_security_doc_names_tests() -> None:
    refs = named_tests()
    assert len(refs) >= 10, refs
    assert any(path.endswith("test_sandbox_escape.py") for path, _ in refs)


def test_every_test_the_security_doc_names_exists() -> None:
    missing = []
    for path, name in named_tests():
        file = ROOT / path
        if not file.is_file():
            found = list((ROOT / "tests").rglob(Path(path).name))
            if not found:
                missing.append(path)
                continue
            file = found[0]
        if name is not None:
            tree = ast.parse(file.read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            if name not in names:
                missing.append(f"{path}::{name}")
    assert missing == [], missing
