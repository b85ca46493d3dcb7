"""Debian's chromium, headless, driven by Selenium through chromium-driver: the one way the tests open a page.

`start_browser(profile_dir)` gives a driver with the flags chromium needs as root (`--no-sandbox`) and none of its
background traffic (the machine has no network beyond the package registries); `console_problems(driver)` reads
the browser log (errors and warnings) since the last call. Tests that need a browser skip when chromium or its
driver is not installed (`apt-get install chromium chromium-driver`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
)


def require_browser() -> None:
    """Skip the calling test when chromium, chromedriver or selenium is missing."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")


def start_browser(profile: Path, *, width: int = 1280, height: int = 1000, downloads: Path | None = None) -> Any:
    """A headless chromium with a fresh profile in `profile`; the caller quits it."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def console_problems(driver: Any) -> list[dict[str, Any]]:
    """Console errors and warnings logged since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
