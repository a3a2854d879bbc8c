"""`apprentice dataset visualize`: the pages as written, then played and clicked in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import chromium, page_state, settled_state, wait_for
from dataset_helpers import FEATURES, frame_value, write_episodes
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from apprentice.dataset import DatasetError, DatasetWriter
from apprentice.dataset.cli import main
from apprentice.dataset.visualize import MARGIN_LEFT, PLOT_W, write_site

FPS, LENGTHS = 30, [45, 30, 20]
browser = pytest.fixture(scope="module")(chromium)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("viz") / "ds"
    with DatasetWriter.create(root, features=FEATURES, fps=FPS, robot_type="test_arm") as w:
        write_episodes(w, LENGTHS)
    write_site(root, root.parent / "site")
    return root.parent / "site"


def polyline_x(driver, frame: int) -> float:
    """x of `frame` as drawn in the first plot's first line (what the cursor must sit on)."""
    points = driver.find_element(By.CSS_SELECTOR, "svg.plot polyline").get_attribute("points").split()
    return float(points[frame].split(",")[0])


def shown_red(driver) -> float:
    """Mean red of the first video's current picture, bottom-right quarter (the test frames encode 9*i there)."""
    return driver.execute_script("""
        const v = document.querySelector("video"), c = document.createElement("canvas");
        c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext("2d"); g.drawImage(v, 0, 0);
        const d = g.getImageData(c.width / 2, c.height / 2, c.width / 2, c.height / 2).data;
        let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i];
        return s / (d.length / 4);""")


def test_site_has_an_index_and_linked_episode_pages(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert [f'href="episode_{e}.html"' in index for e in range(3)] == [True] * 3
    assert "3 episodes, 95 frames at" in index
    middle = (site / "episode_1.html").read_text()
    assert 'href="episode_0.html"' in middle and 'href="episode_2.html"' in middle and 'href="index.html"' in middle
    assert 'id="next"' not in (site / "episode_2.html").read_text()
    assert middle.count("data:video/mp4;base64,") == 1 and "<h3>action</h3>" in middle
    assert "30 frames at 30 fps" in middle


def test_video_plays_and_the_cursor_follows_it(browser, site: Path) -> None:
    browser.get((site / "episode_0.html").as_uri())
    wait_for(browser, "document.querySelector('video').readyState >= 2", "the H.264 video to load")
    browser.execute_script("document.querySelector('video').play()")
    wait_for(browser, "document.querySelector('video').currentTime > 0.4", "playback to advance")
    browser.execute_script("document.querySelector('video').pause()")
    state = settled_state(browser)
    assert state["error"] is None and state["t"] > 0.4
    frame = min(int(state["t"] * FPS + 1e-6), LENGTHS[0] - 1)
    assert state["cursor"] == pytest.approx(polyline_x(browser, frame), abs=0.01)
    assert state["readout"].startswith(f"frame {frame} / {LENGTHS[0] - 1}")


@pytest.mark.parametrize("frame", [3, 20, 44])
def test_after_a_seek_cursor_values_and_picture_show_the_same_frame(browser, site: Path, frame: int) -> None:
    browser.get((site / "episode_0.html").as_uri())
    wait_for(browser, "document.querySelector('video').readyState >= 2", "the H.264 video to load")
    browser.execute_script(f"document.querySelector('video').currentTime = {(frame + 0.5) / FPS}")
    state = settled_state(browser)
    assert state["error"] is None
    assert state["cursor"] == pytest.approx(polyline_x(browser, frame), abs=0.01)
    expected = frame_value(0, frame)
    assert browser.find_element(By.ID, "val-0-2").text == f"{expected['observation.state'][2]:.0f}"
    assert browser.find_element(By.ID, "val-1-0").text == f"{expected['action'][0]:.3f}"
    assert browser.find_element(By.CSS_SELECTOR, "span.text").text == f"ep0 frame{frame}"
    wait_for(browser, "document.querySelector('video').readyState >= 2", "the frame to decode")
    assert shown_red(browser) == pytest.approx(expected["observation.images.top"][-1, -1, 0], abs=8)


def test_click_and_drag_on_a_plot_seek_the_video(browser, site: Path) -> None:
    browser.get((site / "episode_0.html").as_uri())
    wait_for(browser, "document.querySelector('video').readyState >= 2", "the H.264 video to load")
    svg = browser.find_element(By.CSS_SELECTOR, "svg.plot")
    half_width = svg.size["width"] / 2  # ActionChains offsets are from the element's centre, in CSS pixels

    def offset(frame: int) -> float:
        return MARGIN_LEFT + frame / (LENGTHS[0] - 1) * PLOT_W - half_width

    ActionChains(browser).move_to_element_with_offset(svg, offset(12), 0).click().perform()
    state = settled_state(browser)
    assert int(state["t"] * FPS) == 12 and state["cursor"] == pytest.approx(polyline_x(browser, 12), abs=0.01)
    ActionChains(browser).move_to_element_with_offset(svg, offset(10), 0).click_and_hold() \
        .move_by_offset(offset(30) - offset(10), 0).release().perform()
    state = settled_state(browser)
    assert int(state["t"] * FPS) == 30 and state["cursor"] == pytest.approx(polyline_x(browser, 30), abs=0.01)
    assert page_state(browser)["error"] is None


def test_links_move_between_episodes(browser, site: Path) -> None:
    browser.get((site / "index.html").as_uri())
    browser.find_element(By.LINK_TEXT, "episode 1").click()
    assert browser.title == "episode 1"
    browser.find_element(By.ID, "next").click()
    assert browser.title == "episode 2"
    wait_for(browser, "document.querySelector('video').readyState >= 2", "episode 2's video to load")
    assert browser.execute_script("return document.querySelector('video').duration") == pytest.approx(20 / FPS,
                                                                                                       abs=0.05)
    browser.find_element(By.ID, "prev").click()
    assert browser.title == "episode 1"


def test_cli_writes_a_page_or_a_site_and_refuses_bad_episodes(site: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = site.parent / "ds"
    assert main(["visualize", str(root), "--episode", "2", "--output", str(tmp_path / "e2.html")]) == 0
    page = (tmp_path / "e2.html").read_text()
    assert "20 frames at 30 fps" in page and "all episodes" not in page  # a lone page has no dead links
    assert main(["visualize", str(root), "--output-dir", str(tmp_path / "s"), "--episodes", "0", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["episode_0.html", "episode_2.html", "index.html"]
    capsys.readouterr()
    assert main(["visualize", str(root), "--output-dir", str(tmp_path / "t"), "--episodes", "5"]) == 1
    assert "out of range" in capsys.readouterr().err and not (tmp_path / "t").exists()
    assert main(["visualize", str(root), "--episodes", "1"]) == 1
    assert "--episodes: only with --output-dir" in capsys.readouterr().err
    with pytest.raises(DatasetError, match=r"meta/info\.json"):
        write_site(tmp_path / "nope", tmp_path / "u")
