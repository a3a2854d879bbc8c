"""The custom interfaces carry what the recorder and policy node need, with the documented constants."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros


def test_episode_status_states_and_fields() -> None:
    from apprentice.msg import EpisodeStatus

    states = [EpisodeStatus.IDLE, EpisodeStatus.WARMUP, EpisodeStatus.RECORDING, EpisodeStatus.RESETTING,
              EpisodeStatus.SAVING, EpisodeStatus.DONE, EpisodeStatus.ERROR]
    assert states == list(range(7))
    msg = EpisodeStatus(state=EpisodeStatus.RESETTING, remaining_s=4.5, dropped_ticks=2, dataset_root="/d")
    assert (msg.state, msg.remaining_s, msg.dropped_ticks, msg.dataset_root) == (3, 4.5, 2, "/d")


def test_start_episode_service_roundtrip_types() -> None:
    from apprentice.srv import StartEpisode

    request = StartEpisode.Request(task="stack the blocks")
    response = StartEpisode.Response(success=True, message="recording", episode_index=7)
    assert request.task == "stack the blocks"
    assert (response.success, response.episode_index) == (True, 7)
