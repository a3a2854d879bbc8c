"""LeKiwi's terminal keys: lerobot's map and speed levels, held keys from auto-repeat, bad maps named."""

from __future__ import annotations

import math

import pytest

from apprentice.robots import RobotError
from apprentice.robots.base_keys import BaseKeyboard


def test_keys_give_lerobots_twists_and_speed_levels() -> None:
    keys = BaseKeyboard(hold_s=0.5)
    assert keys.twist(0.0) == (0.0, 0.0, 0.0)
    keys.press("w", 0.0)
    keys.press("a", 0.0)
    assert keys.twist(0.1) == pytest.approx((0.1, 0.1, 0.0))  # slow: 0.1 m/s
    keys.press("r", 0.2)
    keys.press("r", 0.2)
    keys.press("r", 0.2)  # capped at the fastest level
    keys.press("x", 0.2)
    assert keys.twist(0.3) == pytest.approx((0.3, 0.3, -math.radians(90)))
    keys.press("f", 0.3)
    keys.press("S", 0.3)  # caps lock does not change the meaning
    assert keys.twist(0.4) == pytest.approx((0.0, 0.2, -math.radians(60)))  # w and s cancel
    assert keys.twist(0.75) == pytest.approx((-0.2, 0.0, 0.0))  # w/a/x released (no repeat for 0.5 s)
    assert keys.twist(0.81) == (0.0, 0.0, 0.0)
    keys.press("s", 1.0)
    keys.press("?", 1.0)  # unmapped keys are ignored
    keys.release_all()
    assert keys.twist(1.0) == (0.0, 0.0, 0.0)


def test_a_map_without_every_action_is_refused() -> None:
    with pytest.raises(RobotError, match=r"no key for \['speed_down'"):
        BaseKeyboard(keys={"forward": "w", "backward": "s", "left": "a", "right": "d", "rotate_left": "z",
                           "rotate_right": "x", "speed_up": "r"})
