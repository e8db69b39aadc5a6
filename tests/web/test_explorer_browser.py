"""The ledger explorer end to end in headless Debian Chromium (Selenium, system
chromedriver): the page shows the node and its balance; a task submitted while the
page is open appears and reaches `completed` live (WebSocket, no reload); events
show their verification verdict (a forged-but-signed overspend shows `invalid` and
why); an account page draws its balance chart; a task page lists its history.

A screenshot of each view is written to `$LEDGER_NET_SCREENSHOT_DIR` (default: the
test's tmp dir) for a person to look at."""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger_net.core.task import Task
from ledger_net.ledger.identity import Identity
from tests.support.chromium import chromium_driver, require_chromium
from tests.support.nodes import NodeThread
from tests.support.replication import forge

pytestmark = pytest.mark.timeout(180)

WAIT = 30.0  # seconds any one thing may take to show up


def wait_in_browser(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT) -> Any:
    """Selenium's wait, failing with the browser's console log."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except Exception as exc:
        logs = ""
        with contextlib.suppress(Exception):
            logs = "\n".join(str(e) for e in driver.get_log("browser"))
        raise AssertionError(f"timed out waiting for {what}; browser log:\n{logs}") from exc


def text_of(driver: Any, css: str) -> str:
    """The rendered text of the first match, read in one script turn (never stale)."""
    return driver.execute_script("const el = document.querySelector(arguments[0]); "
                                 "return el ? el.innerText.trim() : '';", css)


def click(driver: Any, css: str, what: str) -> None:
    """Click a link the live page may re-render at any moment: find and click in one
    script turn, so the element cannot go stale in between."""
    wait_in_browser(driver, lambda d: d.execute_script(
        "const el = document.querySelector(arguments[0]); if (!el) return false; el.click(); return true;", css),
        what)


@pytest.fixture
def driver(tmp_path: Path):
    require_chromium()  # before the test's node starts (the test asks for the driver first)
    d = chromium_driver(tmp_path / "chromium-profile")
    yield d
    d.quit()


def push_invalid_transfer(node_thread: NodeThread) -> str:
    """A correctly signed transfer by a key that owns nothing: stored, but without effect."""
    mallory = Identity.generate()
    net = node_thread.network.ledger.net
    item = forge(mallory, net=net, seq=1, prev=None, type="credit.transfer",
                 body={"to": node_thread.network.ledger.node_id, "amount": 5_000_000})
    request = urllib.request.Request(f"{node_thread.url}/api/v1/events", data=orjson.dumps({"events": [item]}),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        report = orjson.loads(answer.read())
    assert report["stored"] == 1 and len(report["invalid"]) == 1, report
    return mallory.node_id


def has_cosigners_table(driver: Any) -> bool:
    """The proof panel lists the checkpoint's cosigners (none yet on a one-node network)."""
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, "#proof-cosigners"))


def test_explorer_live_in_headless_chromium(driver: Any, node_thread: NodeThread, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("LEDGER_NET_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    me = node_thread.network.ledger.node_id
    started = time.monotonic()

    driver.get(node_thread.url + "/")
    # the node and its balance (100 founder's credits), from the ledger
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'#nodes tr[data-node-id="{me}"]'),
                    "the node row")
    assert text_of(driver, f'#nodes tr[data-node-id="{me}"] .node-balance') == "100"
    assert text_of(driver, "#self-balance") == "100"
    wait_in_browser(driver, lambda d: text_of(d, "#live") == "live", "the WebSocket to connect")
    driver.execute_script("window.__noReload = 'still here';")

    # a task submitted now appears and completes without a reload
    task = Task.create_range_reduce(owner_id=me, start=1, end=200_000, operation="sum",
                                    requirements={"timeout_seconds": 30}, config={"max_price": 0.1})
    task_id = node_thread.call(lambda network: network.submit_task(task.to_dict()))
    row = f'#tasks tr[data-task-id="{task_id}"]'
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the new task's row")
    wait_in_browser(driver, lambda d: text_of(d, f"{row} .status") == "completed", "the task to complete")
    assert text_of(driver, f"{row} .progress-cell") == "100%"
    assert driver.execute_script("return window.__noReload") == "still here", "the page reloaded"

    # events carry this node's verdict; an overspend by a key with nothing is invalid, with the reason
    mallory = push_invalid_transfer(node_thread)
    rows_js = ("return [...document.querySelectorAll('#events tbody tr')].map(r => [r.innerText, "
               "r.querySelector('.verdict')?.dataset.valid, r.querySelector('.verdict')?.innerText])")
    bad = wait_in_browser(driver, lambda d: [r for r in d.execute_script(rows_js) if "credit.transfer" in r[0]],
                   "the invalid transfer's row")[0]
    assert bad[1] == "false" and "invalid" in bad[2] and "balance" in bad[2].lower(), bad
    completed = [r for r in driver.execute_script(rows_js) if "task.completed" in r[0]]
    assert completed and completed[0][1] == "true", completed
    assert driver.execute_script("return window.__noReload") == "still here"
    driver.save_screenshot(str(shots / "explorer-overview.png"))

    # a checkpoint of the books so far: account and event pages then show their proofs
    async def checkpoint() -> Any:
        return node_thread.network.server.checkpoints.make()

    node_thread.call(lambda _: checkpoint())

    # account page: balance chart with a point per balance change
    click(driver, f'#nodes tr[data-node-id="{me}"] a[href="#/account/{me}"]', "the node's account link")
    points = wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#account-chart svg circle"),
                      "the balance chart's points")
    assert len(points) >= 3  # minted, escrow locked, payment earned, refund …
    assert text_of(driver, "#account-balance") == "100"
    assert driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert driver.find_elements(By.CSS_SELECTOR, "#account-events tbody tr .verdict")
    # its balance proof: in the checkpoint this node signed, against the checkpoint's state root
    state_root = node_thread.network.server.checkpoints.latest().body["state_root"]
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#proof-state-root"), "the balance proof")
    assert state_root.startswith(text_of(driver, "#proof-state-root").rstrip("…"))
    assert "Proof of this balance" in text_of(driver, "#proof")
    driver.save_screenshot(str(shots / "explorer-account.png"))

    # an event page: its body and its inclusion proof
    genesis_link = driver.find_elements(By.CSS_SELECTOR, '#account-events a[href^="#/event/"]')[-1]
    genesis_link.click()
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#event-type"), "the event page")
    wait_in_browser(driver, lambda d: "Proof of this event" in text_of(d, "#proof"), "the event's proof")
    assert has_cosigners_table(driver)
    driver.back()
    wait_in_browser(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#account-events"), "the account page again")

    # task page: its whole history, from submission to completion
    click(driver, f'#history a[href="#/task/{task_id}"]', "the task link in the credit history")
    wait_in_browser(driver, lambda d: "task.completed" in text_of(d, "#task-events"), "the task's history")
    history = text_of(driver, "#task-events")
    for kind in ("task.submitted", "task.assigned", "task.chunk_result", "task.chunk_accepted", "task.completed"):
        assert kind in history
    assert text_of(driver, "#task-status") == "completed"
    driver.save_screenshot(str(shots / "explorer-task.png"))

    # the invalid author's account page shows the event and its reason too
    driver.get(f"{node_thread.url}/#/account/{mallory}")
    wait_in_browser(driver, lambda d: "invalid" in text_of(d, "#account-events"), "the forged account's events")
    assert time.monotonic() - started < 120
