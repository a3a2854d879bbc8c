"""Base teleop node: drive a mobile base (LeKiwi) from the terminal's keys; publishes `cmd_vel` (Twist).

Keys are lerobot's LeKiwi keys (apprentice.robots.base_keys): w/s a/d z/x, r/f for the speed level.
Reads the terminal it runs in (no X server needed) at `rate_hz` and publishes a Twist every tick, a zero
one when no movement key is held, so the driver's cmd_vel watchdog only stops the base when this node is
gone. Run it on the laptop; the driver runs on the robot (see the README's LeKiwi section).
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Sequence

from geometry_msgs.msg import Twist
from rclpy.node import Node

from apprentice.nodes.params import Param, declare_parameters, node_help
from apprentice.nodes.runtime import run_node
from apprentice.robots.base_keys import BaseKeyboard

PARAMETERS = (
    Param("rate_hz", 30.0, "cmd_vel rate (a zero Twist when no movement key is held)"),
    Param("hold_s", 0.6, "a key counts as held this long after its last auto-repeat"),
)


class BaseTeleopNode(Node):
    def __init__(self, **kwargs: object) -> None:
        super().__init__("base_teleop", **kwargs)
        p = declare_parameters(self, PARAMETERS)
        self.keyboard = BaseKeyboard(hold_s=float(p["hold_s"]))
        self.fd = sys.stdin.fileno()
        # cbreak: keys arrive one by one without ENTER; Ctrl-C still raises SIGINT for run_node.
        self._saved = termios.tcgetattr(self.fd) if os.isatty(self.fd) else None
        if self._saved is not None:
            tty.setcbreak(self.fd)
        self.publisher = self.create_publisher(Twist, "cmd_vel", 10)
        self.create_timer(1.0 / float(p["rate_hz"]), self._tick)
        self.get_logger().info("base keys: w/s forward/back, a/d left/right, z/x rotate, r/f speed; Ctrl-C quits")

    def _tick(self) -> None:
        now = time.monotonic()
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:  # stdin closed: nobody is at the keys any more
                self.keyboard.release_all()
                break
            for key in data.decode(errors="ignore"):
                self.keyboard.press(key, now)
        vx, vy, wz = self.keyboard.twist(now)
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.angular.z = vx, vy, wz
        self.publisher.publish(msg)

    def close(self) -> None:
        """Give the terminal its settings back. The base stops through the driver's cmd_vel watchdog:
        the context is already shut down here, so no last zero Twist can be sent."""
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


def main(argv: Sequence[str] | None = None) -> int:
    return run_node(BaseTeleopNode, argv, usage=node_help("base_teleop_node", __doc__, PARAMETERS))


if __name__ == "__main__":
    raise SystemExit(main())
