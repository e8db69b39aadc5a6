"""Docs that run: every block of README.md and docs/*.md a reader would paste is tagged, and
the tagged blocks of each page run in order, in a temp dir, printing what the page shows.

The tags and the matching rules are in tests/support/doc_harness.py (and docs/index.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.doc_harness import Block, DocFormatError, output_matches, parse, run_page

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages whose blocks are not tagged yet, each with the reason (listed, never skipped silently).
NOT_YET_TAGGED: dict[str, str] = {}


def _blocks(page: Path) -> list[Block]:
    return parse(page)


def test_every_pasteable_block_is_tagged() -> None:
    untagged = [b.where for page in PAGES if page.name not in NOT_YET_TAGGED
                for b in _blocks(page) if b.pasteable() and b.tag is None]
    assert not untagged, ("blocks a reader would paste need <!-- run: ... --> or <!-- norun: REASON --> "
                          f"on the line before the fence: {untagged}")


def test_not_yet_tagged_pages_exist() -> None:
    # an entry for a page that was renamed or removed would exempt nothing and hide the rename
    assert all((ROOT / "docs" / name).exists() for name in NOT_YET_TAGGED)


def test_output_blocks_follow_something_that_runs() -> None:
    for page in PAGES:
        blocks = _blocks(page)
        for before, block in zip(blocks, blocks[1:], strict=False):
            if block.tag == "run" and block.kind == "output":
                assert before.tag == "run" and before.kind in ("shell", "python"), (
                    f"{block.where}: an output block must come right after a shell or python run block")


def test_operations_shows_the_newest_migration() -> None:
    # The Alembic transcript needs PostgreSQL and a checkout (norun), so its head is checked here.
    import re
    versions = sorted(p.name[:4] for p in (ROOT / "ledger_net" / "migrations" / "versions").glob("[0-9]*.py"))
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    shown = re.findall(r"^(\d{4}) \(head\)$", text, re.MULTILINE)
    history = re.findall(r"^(?:<base>|\d{4}) -> (\d{4})", text, re.MULTILINE)
    assert shown == [versions[-1]], f"operations.md shows head {shown}, the newest migration is {versions[-1]}"
    assert sorted(history) == versions, f"operations.md's alembic history lists {sorted(history)}, not {versions}"


RUNNABLE = [p for p in PAGES if any(b.tag == "run" for b in _blocks(p))]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_page_runs_as_shown(page: Path, tmp_path: Path) -> None:
    failures = run_page(page, tmp_path)
    assert not failures, "\n\n".join(failures)


# ------------------------------------------------------------------ the harness itself

def test_wildcards() -> None:
    assert output_matches("node 7bfe97a9b2866b6dacc8fefd500bd03b founded", "node 0123456789abcdef0123 founded")
    assert output_matches("AUDIT OK (… s)", "AUDIT OK (0.381 s)")
    assert output_matches("a\n...\nz", "a\nb\nc\nz")
    assert output_matches("a\n...\nz", "a\nz")
    assert output_matches("x   1  2", "x 1 2")  # blanks squeezed
    assert not output_matches("balance 100.0", "balance 99.0")
    assert not output_matches("a\nz", "a\nb\nz")  # every line shown, unless `...` says otherwise
    assert not output_matches("a", "")
    assert not output_matches("task-0123456789abcdef", "task-0123")  # a hex run stands for 12 or more
    assert output_matches("", "")
    assert output_matches("2026-11-30 18:50:48,740 INFO x", "2027-01-02 03:04:05,006 INFO x")
    assert not output_matches("2026-11-30 18:50:48,740 INFO x", "2027-01-02 03:04:05,006 WARNING x")


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return page


def test_a_wrong_output_fails(tmp_path: Path) -> None:
    page = _page(tmp_path, "<!-- run: shell -->\n```bash\necho 41\n```\n\n<!-- run: output -->\n```\n42\n```\n")
    failures = run_page(page, tmp_path / "work")
    assert len(failures) == 1 and "output differs" in failures[0] and "41" in failures[0]


def test_a_failing_block_fails_and_stops_the_page(tmp_path: Path) -> None:
    page = _page(tmp_path, "<!-- run: python -->\n```python\nimport asyncio\nasync def f(): pass\nasyncio.run(g())\n```"
                           "\n\n<!-- run: shell -->\n```bash\ntouch later\n```\n")
    failures = run_page(page, tmp_path / "work")
    assert len(failures) == 1 and "NameError" in failures[0]
    assert not (tmp_path / "work" / "later").exists()


def test_a_page_is_one_session_with_ports_and_background_jobs(tmp_path: Path) -> None:
    page = _page(tmp_path, """
<!-- run: shell ports=5571 -->
```bash
export GREETING=hello
python -m http.server 5571 --bind 127.0.0.1 > server.log 2>&1 &
echo $! > server.pid
timeout 20 sh -c 'until grep -qs Serving server.log; do sleep 0.1; done'
echo "$GREETING on 5571"
```

<!-- run: output -->
```
hello on 5571
```

<!-- run: transcript -->
```
$ echo $GREETING again
hello again
$ false
```
""")
    failures = run_page(page, tmp_path / "work")
    assert len(failures) == 1 and "exit status 1" in failures[0] and "$ false" not in failures[0].split(":")[0]
    pid = int((tmp_path / "work" / "server.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the background server was stopped with the page
        import os
        os.kill(pid, 0)


def test_tags_are_checked(tmp_path: Path) -> None:
    with pytest.raises(DocFormatError, match="must say why"):
        parse(_page(tmp_path, "<!-- norun: -->\n```bash\nls\n```\n"))
    with pytest.raises(DocFormatError, match="unknown run kind"):
        parse(_page(tmp_path, "<!-- run: pyhton -->\n```python\npass\n```\n"))
