"""Headless Debian Chromium driven by selenium + chromedriver, for tests of the visualize pages.

A uniquely named module (not conftest), like dataset_helpers. scripts/setup.sh installs chromium and
chromium-driver; without them the browser tests skip and say so."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# The flags this closed-network machine needs: no sandbox as root, and none of Chromium's own connections.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1100,1300"]


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium for one test module (`browser = pytest.fixture(scope="module")(chromium)`)."""
    paths = chromium_paths()
    if paths is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="apprentice-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: webdriver.Chrome, script: str, what: str, timeout_s: float = 20.0) -> Any:
    """Poll a JS expression until it is truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what} (last value {value!r})")


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """What the page shows now: the clock, media error, cursor x and frame readout."""
    return driver.execute_script("""
        const v = document.querySelector("video");
        return {t: v.currentTime, paused: v.paused, error: v.error && v.error.message, ready: v.readyState,
                cursor: Number(document.querySelector("line.cursor").getAttribute("x1")),
                readout: document.getElementById("readout").textContent};""")


def settled_state(driver: webdriver.Chrome) -> dict[str, Any]:
    """Wait for a seek to land and the page to redraw (two animation frames), then return page_state."""
    wait_for(driver, "!document.querySelector('video').seeking", "the seek to finish")
    driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));")
    return page_state(driver)
