"""The SDKs' PortHandler on real adapters and on pseudo-terminals (the virtual servo bus).

Opening a pty needs nothing special: both SDKs open the port through pyserial, which ignores EINVAL/ENOTTY
from the modem-line ioctls a pty rejects, and Linux accepts tcsetattr with any standard or BOTHER baud rate
on a pty. The one thin PortHandler subclass below changes only *waiting*, never a byte on the wire.
"""

from __future__ import annotations

import os
import select
from pathlib import Path

PTY_TIMEOUT_MS = 250.0  # measured on a loaded 2-core VM: p99.9 34 ms, max ~200 ms per exchange


def default_timeout_ms(port: str) -> float:
    """Status-packet timeout floor: PTY_TIMEOUT_MS on /dev/pts/* (also through a symlink), else the SDK's."""
    return PTY_TIMEOUT_MS if os.path.realpath(port).startswith("/dev/pts/") else 0.0


class WaitingReads:
    """Mixed into the SDKs' PortHandler; two timing changes, no protocol change.

    - readPort waits up to 0.5 ms in select() for the first byte instead of returning at once: the SDKs
      poll the port in a tight loop, which on a 2-core machine starves whoever must produce the reply
      (the virtual bus, the USB stack). A reply wakes select() immediately, so latency is unchanged.
    - setPacketTimeout keeps at least `min_timeout_ms`: on a pty the peer is a process subject to OS
      scheduling, not a UART, so the SDK's ~34 ms status timeout is raised (PTY_TIMEOUT_MS by default).
    - isPacketTimeout, on a pty, gives the peer one last 50 ms look before declaring a status packet
      lost: a wall-clock timeout on a loaded machine can mean only that this process was descheduled
      and the peer has not had its turn since.
    """

    min_timeout_ms = 0.0

    def readPort(self, length: int) -> bytes:
        if self.ser.in_waiting == 0:
            select.select([self.ser.fd], [], [], 0.0005)
        return super().readPort(length)

    def setPacketTimeout(self, packet_length: int) -> None:
        super().setPacketTimeout(packet_length)
        self.packet_timeout = max(self.packet_timeout, self.min_timeout_ms)
        self._last_look = self.min_timeout_ms > 0

    def setPacketTimeoutMillis(self, msec: float) -> None:
        super().setPacketTimeoutMillis(msec)
        self._last_look = False  # fixed listening windows (broadcast ping) end on time

    def isPacketTimeout(self) -> bool:
        if self.getTimeSinceStart() <= self.packet_timeout:
            return False
        if getattr(self, "_last_look", False):
            self._last_look = False
            select.select([self.ser.fd], [], [], 0.05)
            if self.ser.in_waiting:
                self.packet_start_time = self.getCurrentTime()
                return False
        self.packet_timeout = 0
        return True


def latency_timer_warning(port: str, sysfs: Path = Path("/sys/bus/usb-serial/devices")) -> str | None:
    """A fix-it message when an FTDI-type adapter (U2D2, most USB-serial boards) buffers for > 1 ms.

    Its default 16 ms latency timer holds every status packet back, capping a status-reading loop near
    60 Hz whatever the baud rate; ROBOTIS recommends 1 ms for its U2D2.
    """
    name = os.path.basename(os.path.realpath(port))
    timer = sysfs / name / "latency_timer"
    try:
        value = int(timer.read_text().strip())
    except (OSError, ValueError):
        return None  # not a usb-serial device exposing a latency timer (ACM boards, ptys): nothing to tune
    if value <= 1:
        return None
    return (
        f"{port}: USB latency timer is {value} ms, which delays every status packet; set it to 1 ms: "
        f'echo 1 | sudo tee {timer}  (or a udev rule: ATTR{{latency_timer}}="1")'
    )
