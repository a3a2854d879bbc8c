"""Recorder session logic without ROS: timed cycles, controls, background conversion, resume after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from recorder_bagmaker import CONTRACT, contract_file, frame_image, image, joint_state

from apprentice.bag import BagError
from apprentice.bag.recording import DONE, IDLE, RECORDING, RESETTING, RecordConfig, Recorder
from apprentice.contract import load_contract
from apprentice.dataset import LeRobotDataset


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _feed(rec: Recorder, clock: Clock, seconds: float, value: float) -> None:
    """Publish 30 Hz camera + state + leader for `seconds` of fake time, ticking the recorder."""
    for _ in range(int(seconds * 30)):
        ns = int(clock.t * 1e9) + 1_000_000_000
        rec.on_message("joint_states", joint_state(ns, np.full(6, value)), ns)
        rec.on_message("leader/joint_states", joint_state(ns, np.full(6, value + 1)), ns)
        rec.on_message("cameras/top/image_raw", image(ns, frame_image(int(value))), ns)
        clock.t += 1 / 30
        rec.tick()


def _recorder(tmp_path: Path, clock: Clock, **kw) -> Recorder:
    contract = load_contract(contract_file(tmp_path))
    cfg = RecordConfig(root=tmp_path / "ds", vcodec="h264", **kw)
    return Recorder(cfg, contract, clock=clock)


def test_timed_session_records_num_episodes(tmp_path: Path) -> None:
    clock = Clock()
    rec = _recorder(tmp_path, clock, num_episodes=2, episode_time_s=0.5, reset_time_s=0.2, warmup_time_s=0.1)
    rec.open()
    assert rec.state == IDLE
    rec.start_session()
    _feed(rec, clock, 0.1, 0)  # warm-up: not recorded
    assert rec.state == RECORDING
    _feed(rec, clock, 0.5, 1)
    assert rec.state == RESETTING
    _feed(rec, clock, 0.2, 99)  # reset: not recorded
    _feed(rec, clock, 0.55, 2)
    assert rec.state == DONE
    assert rec.wait_converted(60)
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2
    state = ds.column("observation.state")
    assert set(np.unique(state)) == {1.0, 2.0}  # nothing from warm-up (0) or reset (99)
    assert (ds.column("action") == state + 1).all()
    names = sorted(p.name for p in (tmp_path / "ds_bags").iterdir())
    assert names == ["episode_000000", "episode_000001", "journal.jsonl"]


def test_rerecord_during_the_reset_takes_back_the_episode_just_recorded(tmp_path: Path) -> None:
    """lerobot-record's left arrow in the reset period: the last episode is dropped and recorded again."""
    clock = Clock()
    rec = _recorder(tmp_path, clock, num_episodes=2, episode_time_s=0.5, reset_time_s=0.3, warmup_time_s=0)
    rec.open()
    rec.start_session()
    _feed(rec, clock, 0.55, 1)
    assert rec.state == RESETTING
    assert rec.wait_converted(60)
    assert rec.status()["episodes_saved"] == 0  # held until the reset ends
    ok, msg = rec.rerecord_episode()
    assert ok and "episode_000000" in msg
    assert not (tmp_path / "ds_bags" / "episode_000000").exists()
    assert rec.rerecord_episode()[0] is False  # nothing left to take back
    _feed(rec, clock, 0.2, 99)  # the reset goes on
    assert rec.state == RESETTING
    _feed(rec, clock, 0.1, 99)
    _feed(rec, clock, 0.55, 2)  # episode 0 again
    assert rec.state == RESETTING
    _feed(rec, clock, 0.3, 98)  # reset ends: episode 0 goes to the converter
    _feed(rec, clock, 0.55, 3)  # episode 1, the last: no reset, converted at once
    assert rec.state == DONE
    assert rec.wait_converted(60)
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2
    assert set(np.unique(ds.column("observation.state"))) == {2.0, 3.0}


def test_controls_rerecord_discard_and_status(tmp_path: Path) -> None:
    clock = Clock()
    rec = _recorder(tmp_path, clock, autostart=False, episode_time_s=0)
    rec.open()
    assert rec.state == IDLE
    assert rec.stop_episode()[0] is False
    ok, msg, index = rec.start_episode("other task")
    assert ok and index == 0 and "episode_000000" in msg
    _feed(rec, clock, 0.3, 5)
    assert rec.status()["frames"] == 9 and rec.status()["state_name"] == "RECORDING"
    assert rec.rerecord_episode()[0] and rec.state == IDLE
    assert not (tmp_path / "ds_bags" / "episode_000000").exists()
    rec.start_episode()
    _feed(rec, clock, 0.3, 6)
    assert rec.discard_episode()[0]
    rec.start_episode()
    _feed(rec, clock, 0.4, 7)
    assert rec.stop_episode()[0]
    assert rec.wait_converted(60)
    status = rec.status()
    assert status["episodes_saved"] == 1 and status["episode_index"] == 1 and status["task"] == "other task"
    assert "episode 0" in status["message"]
    rec.close()
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 1 and set(np.unique(ds.column("observation.state"))) == {7.0}
    assert ds[0]["task"] == "other task"


def test_rejected_episode_keeps_session_going(tmp_path: Path) -> None:
    clock = Clock()
    rec = _recorder(tmp_path, clock, autostart=False, episode_time_s=0)
    rec.open()
    rec.start_episode()
    for _ in range(10):  # state only: the camera never arrives
        ns = int(clock.t * 1e9) + 1
        rec.on_message("joint_states", joint_state(ns, np.zeros(6)), ns)
        clock.t += 0.03
    rec.stop_episode()
    assert rec.wait_converted(60)
    assert "not added to the dataset" in rec.status()["message"] and "cameras/top/image_raw" in rec.message
    rec.close()


def test_existing_dataset_needs_resume(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    rec = _recorder(tmp_path, Clock())
    with pytest.raises(BagError, match="--resume"):
        rec.open()


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {bagmaker!r})
    from recorder_bagmaker import frame_image, image, joint_state
    from apprentice.bag.recording import RecordConfig, Recorder
    from apprentice.contract import load_contract
    rec = Recorder(RecordConfig(root={root!r}, vcodec="h264", num_episodes=5, episode_time_s=0.6,
                                reset_time_s=0.05), load_contract({contract!r}))
    rec.open()
    rec.start_session()
    i = 0
    while True:  # 30 Hz until killed
        ns = time.time_ns()
        rec.on_message("joint_states", joint_state(ns, np.full(6, float(i))), ns)
        rec.on_message("leader/joint_states", joint_state(ns, np.full(6, i + 1.0)), ns)
        rec.on_message("cameras/top/image_raw", image(ns, frame_image(i)), ns)
        rec.tick()
        i += 1
        time.sleep(1 / 30)
""")


def _events(bags: Path) -> list[dict]:
    path = bags / "journal.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def test_sigkill_mid_episode_then_resume(tmp_path: Path) -> None:
    """A real SIGKILL in the 3rd episode: 2 episodes survive, the 3rd bag is salvaged, recording goes on."""
    contract = contract_file(tmp_path)
    root, bags = tmp_path / "ds", tmp_path / "ds_bags"
    code = SCRIPT.format(bagmaker=str(Path(__file__).parent), root=str(root), contract=str(contract))
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            converted = [e for e in _events(bags) if e["event"] == "converted"]
            open_bags = [m for m in bags.glob("episode_*/*.mcap") if not (m.parent / "metadata.yaml").exists()]
            if len(converted) >= 2 and open_bags and open_bags[0].stat().st_size > 20_000:
                break
            assert proc.poll() is None, "recorder script died"
            time.sleep(0.05)
        else:
            pytest.fail(f"recorder did not reach episode 3: {_events(bags)}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    cut = [p.name for p in bags.glob("episode_*") if not (p / "metadata.yaml").exists()]
    assert len(cut) == 1, f"expected one interrupted bag, found {cut}"
    cut_name, next_name = cut[0], f"episode_{int(cut[0][-6:]) + 1:06d}"

    clock = Clock()
    rec = Recorder(
        RecordConfig(root=root, vcodec="h264", resume=True, autostart=False, episode_time_s=0),
        load_contract(contract),
        clock=clock,
    )
    notes = rec.open()
    assert any(f"{cut_name} was interrupted" in n and "salvaged" in n for n in notes), notes
    assert (bags / cut_name / "metadata.yaml").is_file()  # salvaged into a complete bag
    rec.wait_converted(60)
    assert rec.episode_index >= 2
    index_before = rec.episode_index
    ok, _, index = rec.start_episode()
    assert ok and index == index_before
    assert (bags / next_name).is_dir()  # numbering continues after the salvaged bag
    _feed(rec, clock, 0.4, 500)
    rec.stop_episode()
    assert rec.wait_converted(60)
    rec.close()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == index_before + 1
    assert set(np.unique(ds.column("observation.state")[ds.column("episode_index") == index_before])) == {500.0}


def test_reset_phase_waits_for_holds(tmp_path: Path) -> None:
    clock = Clock()
    rec = _recorder(tmp_path, clock, num_episodes=2, episode_time_s=0.2, reset_time_s=0.1)
    rec.open()
    rec.start_session()
    _feed(rec, clock, 0.25, 1)
    assert rec.state == RESETTING
    rec.holds.add("reset_service")  # e.g. sim/reset has not answered
    _feed(rec, clock, 0.5, 99)
    assert rec.state == RESETTING
    rec.holds.discard("reset_service")
    rec.tick()
    assert rec.state == RECORDING
    rec.close()


FULL_DISK = textwrap.dedent("""
    import json, resource, signal, sys, time
    import numpy as np
    sys.path.insert(0, {bagmaker!r})
    from recorder_bagmaker import frame_image, image, joint_state
    from apprentice.bag.recording import RecordConfig, Recorder
    from apprentice.contract import load_contract
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG instead
    rec = Recorder(RecordConfig(root={root!r}, vcodec="h264", autostart=False, episode_time_s=0),
                   load_contract({contract!r}))
    rec.open()
    def feed(n, value):
        for i in range(n):
            ns = time.time_ns()
            rec.on_message("joint_states", joint_state(ns, np.full(6, value)), ns)
            rec.on_message("leader/joint_states", joint_state(ns, np.full(6, value)), ns)
            rec.on_message("cameras/top/image_raw", image(ns, frame_image(i)), ns)
            time.sleep(0.005)
    rec.start_episode(); feed(20, 1.0); rec.stop_episode(); rec.wait_converted(60)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))  # the "disk" fills during episode 2
    rec.start_episode(); feed(400, 2.0)
    print(json.dumps(rec.status()))
    rec.close()
""")


def test_disk_full_mid_episode_stops_cleanly(tmp_path: Path) -> None:
    """A real write failure (file-size limit -> EFBIG): ERROR state naming the bag, saved episode intact."""
    contract = contract_file(tmp_path)
    root = tmp_path / "ds"
    code = FULL_DISK.format(bagmaker=str(Path(__file__).parent), root=str(root), contract=str(contract))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout.strip().splitlines()[-1])
    assert status["state_name"] == "ERROR" and "episode_000001" in status["message"]
    assert "File too large" in status["message"] and "--resume" in status["message"]
    assert LeRobotDataset(root).num_episodes == 1
    assert not (tmp_path / "ds_bags" / "episode_000001" / "metadata.yaml").exists()  # left for salvage


def test_resume_with_another_contract_is_refused(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, Clock())
    rec.open()
    rec.close()
    other = contract_file(tmp_path, CONTRACT.replace("shape: [24, 32, 3]", "shape: [48, 64, 3]"))
    again = Recorder(RecordConfig(root=tmp_path / "ds", vcodec="h264", resume=True), load_contract(other))
    with pytest.raises(BagError, match=r"other features .*observation.images.top"):
        again.open()


def test_session_starts_on_an_action_publisher_when_a_policy_acts(tmp_path: Path) -> None:
    """wait_for_action=False (`apprentice record -p`): observations flowing + a publisher on the action
    topic start the session; by default the action's first message is awaited too."""
    for wait_for_action in (False, True):
        clock = Clock()
        (tmp_path / str(wait_for_action)).mkdir()
        rec = _recorder(tmp_path / str(wait_for_action), clock, wait_for_action=wait_for_action, episode_time_s=0.5)
        rec.open()
        for _ in range(3):
            ns = int(clock.t * 1e9) + 1_000_000_000
            rec.on_message("joint_states", joint_state(ns, np.zeros(6)), ns)
            rec.on_message("cameras/top/image_raw", image(ns, frame_image(0)), ns)
            clock.t += 1 / 30
            rec.tick()
        assert rec.state == IDLE  # no action publisher yet: nothing starts blind
        rec.published.add("leader/joint_states")
        rec.tick()
        assert rec.state == (IDLE if wait_for_action else RECORDING)
        rec.close()
