"""`apprentice dataset visualize ROOT --serve`: pages over HTTP on 127.0.0.1, browsed in headless Chromium."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import chromium, settled_state, wait_for
from dataset_helpers import FEATURES, write_episodes
from selenium.webdriver.common.by import By

from apprentice.dataset import DatasetError, DatasetWriter
from apprentice.dataset.cli import main
from apprentice.dataset.visualize_serve import make_server

browser = pytest.fixture(scope="module")(chromium)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "ds"
    with DatasetWriter.create(path, features=FEATURES, fps=30, robot_type="test_arm") as w:
        write_episodes(w, [20, 40])
    return path


@pytest.fixture(scope="module")
def url(root: Path) -> Iterator[str]:
    server = make_server(root, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_browse_from_the_index_to_an_episode_and_play_it(browser, url: str) -> None:
    browser.get(url)
    assert "2 episodes, 60 frames" in browser.page_source
    browser.find_element(By.LINK_TEXT, "episode 1").click()
    assert browser.title == "episode 1" and browser.current_url == url + "episode_1.html"
    wait_for(browser, "document.querySelector('video').readyState >= 2", "the served page's video to load")
    browser.execute_script("document.querySelector('video').play()")
    wait_for(browser, "document.querySelector('video').currentTime > 0.3", "playback to advance")
    browser.execute_script("const v = document.querySelector('video'); v.pause(); v.currentTime = 30.5 / 30")
    state = settled_state(browser)
    assert state["error"] is None and state["readout"].startswith("frame 30 / 39")
    browser.find_element(By.ID, "prev").click()
    assert browser.title == "episode 0"
    browser.find_element(By.LINK_TEXT, "all episodes").click()
    assert browser.current_url == url + "index.html"


def test_unknown_pages_are_404_with_the_reason(url: str) -> None:
    for path, reason in [("episode_9.html", "out of range"), ("nothing", "try / or /episode_0.html")]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + path, timeout=30)
        assert e.value.code == 404 and reason in e.value.read().decode()


def test_a_taken_port_and_a_bad_root_are_one_line_errors(root: Path, url: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    port = url.rsplit(":", 1)[1].strip("/")
    assert main(["visualize", str(root), "--serve", "--port", port]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1
    with pytest.raises(DatasetError, match=r"meta/info\.json"):
        make_server(tmp_path / "missing", 0)


def test_cli_serve_prints_its_address_and_stops_on_ctrl_c(root: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "apprentice.dataset.cli", "visualize", str(root), "--serve",
                             "--port", "0", "--episode", "1"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)episode_1\.html", line)
        assert match, line
        page = urllib.request.urlopen(match[1] + "episode_1.html", timeout=60).read().decode()
        assert "<title>episode 1</title>" in page and "40 frames at 30 fps" in page
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
