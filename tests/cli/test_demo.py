"""`ledger-net demo` syncs its peers by heads: each event crosses each link once, so a round
costs what is new, not the whole log (issue 15 item 6)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ledger_net import demo
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event


def test_each_event_crosses_each_link_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict[tuple[str, str], int] = {}  # (receiving ledger's node id, event hash) -> times sent
    ingest = Ledger.ingest

    def counting(self: Ledger, events: Sequence[Event], source: str | None = None) -> Any:
        for event in events:
            sent[(self.node_id, event.hash)] = sent.get((self.node_id, event.hash), 0) + 1
        return ingest(self, events, source)

    monkeypatch.setattr(Ledger, "ingest", counting)
    report = demo.run_demo(tmp_path, workers=3, tasks=4, say=lambda _: None, seed=7)
    assert report["ok"] and report["peers_agree"]
    resent = {key: n for key, n in sent.items() if n > 1}
    assert not resent, f"{len(resent)} events were sent to a peer that already had them"
    # every peer received every event it did not author: the sync is complete, not just cheap
    assert len(sent) == report["events"] * 3  # 4 peers: each event reaches the 3 that did not write it


def test_the_report_times_the_audit_apart_from_the_run(tmp_path: Path) -> None:
    lines: list[str] = []
    report = demo.run_demo(tmp_path, workers=2, tasks=1, say=lines.append, seed=1)
    assert 0 <= report["audit_seconds"] <= report["seconds"]
    assert lines[-1].endswith(f"(audit {report['audit_seconds']} s; whole run {report['seconds']} s)")
