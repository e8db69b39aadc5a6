"""Headless Debian Chromium driven by Selenium with the system chromedriver.

Selenium Manager is never consulted (it would try to download a browser/driver):
the binary and the driver are given explicitly. In CI (`CI` set) a missing browser
is a failure, not a skip: `.ci/run` installs `chromium` and `chromium-driver`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    """Skip (locally) or fail (CI) when the browser, its driver or selenium is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401 -- only whether it is installed
    except ImportError:
        missing.append("python package selenium")
    if missing:
        message = f"headless browser test needs {', '.join(missing)} (apt: chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def chromium_driver(profile_dir: Path, width: int = 1360, height: int = 1000) -> Any:
    """A headless Chromium WebDriver with a throwaway profile, no network side channels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
                f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # should Selenium Manager ever run: never download
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver
