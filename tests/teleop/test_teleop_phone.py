"""Phone: the served page in headless Chromium with synthetic DeviceOrientation events and pressed
buttons, and the websocket protocol from a real client."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from websockets.sync.client import connect

from apprentice.resources import config_path
from apprentice.teleop import DeviceSource, TeleopError, load_device_map
from apprentice.teleop.phone import PhoneServer

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
# The flags this closed machine needs: no sandbox as root, none of Chromium's own connections.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def server() -> Iterator[PhoneServer]:
    phone = PhoneServer(port=0)
    try:
        yield phone
    finally:
        phone.close()


def test_page_and_404_over_http(server: PhoneServer) -> None:
    page = urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert 'id="deadman"' in page and "deviceorientation" in page
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(server.url + "nothing", timeout=5)


def test_websocket_messages_become_inputs_and_a_disconnect_is_a_loss(server: PhoneServer) -> None:
    assert not server.state.snapshot().connected  # no phone yet: the arm holds
    with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        ws.send(json.dumps({"type": "state", "alpha": 90.0, "beta": 10.0, "gamma": None, "buttons": ["deadman"]}))
        ws.send("not json")
        ws.send(json.dumps({"type": "press", "button": "stop"}))
        ws.send(json.dumps({"type": "press", "button": "format_disk"}))
        assert wait_until(lambda: "stop" in list(server.state.presses))
        snap = server.state.snapshot()
        assert snap.presses == ("deadman", "stop")  # the unknown button was ignored
        assert snap.connected and snap.buttons == {"deadman"}
        assert snap.positions == pytest.approx({"alpha": np.pi / 2, "beta": np.radians(10.0)})
    assert wait_until(lambda: not server.state.snapshot().connected)


def test_a_taken_port_and_a_bad_certificate_are_one_line_errors(server: PhoneServer, tmp_path: Path) -> None:
    with pytest.raises(TeleopError, match=f"cannot serve on 127.0.0.1:{server.port}"):
        PhoneServer(port=server.port)
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(TeleopError, match="cannot load certificate"):
        PhoneServer(port=0, certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "cert.pem"))
    with pytest.raises(TeleopError, match="give both"):
        PhoneServer(port=0, certfile=str(tmp_path / "cert.pem"))


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    phone = PhoneServer(port=0, certfile=str(cert), keyfile=str(key))
    try:
        import ssl

        assert phone.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        assert b"deadman" in urllib.request.urlopen(phone.url, timeout=5, context=context).read()
    finally:
        phone.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (browser_path and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    pytest.importorskip("selenium", reason="selenium comes with the dev extra")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="apprentice-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def orient(browser: object, alpha: float, beta: float, gamma: float) -> None:
    browser.execute_script(
        "window.dispatchEvent(new DeviceOrientationEvent('deviceorientation', "
        "{alpha: arguments[0], beta: arguments[1], gamma: arguments[2], absolute: false}));",
        alpha, beta, gamma,
    )  # fmt: skip


def test_browser_page_drives_the_source(server: PhoneServer, browser: object) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    device_map = load_device_map(config_path("teleop", "phone_joints.yaml"))
    source = DeviceSource(server, device_map, JOINTS, gripper_joint="gripper")
    source.observe(np.zeros(6))
    browser.get(server.url)
    assert wait_until(lambda: browser.execute_script("return window.apprentice.open"))
    orient(browser, 10.0, 5.0, 0.0)
    assert wait_until(lambda: server.state.snapshot().positions.get("alpha") == pytest.approx(np.radians(10.0)))
    assert source.read() is None and "dead-man" in source.hold_reason  # tilting alone moves nothing

    deadman = browser.find_element(By.ID, "deadman")
    ActionChains(browser).click_and_hold(deadman).perform()
    assert wait_until(lambda: "deadman" in server.state.snapshot().buttons)
    assert np.allclose(source.read(), 0)  # engaging is not a motion
    orient(browser, 30.0, 15.0, -20.0)  # turn 20°, tilt 10° forward, 20° to the left
    assert wait_until(lambda: server.state.positions.get("gamma") == pytest.approx(np.radians(-20.0)))
    target = source.read()
    assert target[:5] == pytest.approx(np.radians([20.0, 10.0, 0.0, 0.0, -20.0]))
    ActionChains(browser).release(deadman).perform()
    assert wait_until(lambda: "deadman" not in server.state.snapshot().buttons)
    assert source.read() is None  # let go: the arm holds

    browser.find_element(By.ID, "stop").click()
    browser.find_element(By.ID, "intervention").click()
    requests: list[str] = []

    def pulled() -> bool:
        assert source.read() is None
        requests.extend(source.pop_episode_requests())
        return source.intervention and bool(requests)

    assert wait_until(pulled)
    assert requests == ["stop"]

    browser.get("about:blank")  # the phone closes the page: lost, and the source says so
    assert wait_until(lambda: not server.state.snapshot().connected)
    source.read()
    assert source.hold_reason.endswith("lost")
