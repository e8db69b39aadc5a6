"""The docs keep up with the code: every event type and body field is documented,
and the docs map links every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger_net.ledger.schemas import SCHEMAS

DOCS = Path(__file__).resolve().parents[2] / "docs"
MY_PAGES = ("index.md", "getting-started.md", "architecture.md", "event-types.md", "api-reference.md",
            "auditing.md", "operations.md")
HEADING = re.compile(r"^##\s+`([a-z_.]+)`\s*$", re.MULTILINE)


def _sections() -> dict[str, str]:
    """Section text of event-types.md by the event type in its `## \\`type\\`` heading."""
    text = (DOCS / "event-types.md").read_text(encoding="utf-8")
    matches = list(HEADING.finditer(text))
    return {m.group(1): text[m.end():(matches[i + 1].start() if i + 1 < len(matches) else len(text))]
            for i, m in enumerate(matches)}


def test_every_event_type_has_a_section() -> None:
    missing = sorted(set(SCHEMAS) - set(_sections()))
    assert not missing, f"docs/event-types.md lacks a '## `type`' section for: {missing}"


def test_no_section_for_an_unknown_type() -> None:
    stale = sorted(set(_sections()) - set(SCHEMAS))
    assert not stale, f"docs/event-types.md documents types that are not in SCHEMAS: {stale}"


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
def test_every_body_field_is_mentioned(event_type: str) -> None:
    section = _sections().get(event_type, "")
    schema = SCHEMAS[event_type]
    fields = list(schema.required) + list(dict(schema.optional or {}))
    missing = [f for f in fields if f"`{f}`" not in section]
    assert not missing, f"docs/event-types.md, section {event_type}: fields not mentioned: {missing}"


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md")
    unlinked = [p for p in pages if f"({p})" not in index and f"({p}#" not in index]
    assert not unlinked, f"docs/index.md does not link: {unlinked}"


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\(([^)#:\s]+)(#[^)]*)?\)")
    broken = []
    for page in (DOCS / name for name in MY_PAGES if (DOCS / name).exists()):
        for target, _ in link.findall(page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"broken relative links: {broken}"
