"""Progress: loss, lr, steps/s and ETA — a tqdm bar on a terminal, log lines otherwise (files, launch, CI)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("apprentice.train")


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(self, total: int, start: int, enabled: bool = True) -> None:
        self.bar = None
        self.enabled = enabled
        self.total = total
        self._start_step = start
        self._t0 = time.monotonic()
        if not enabled or not sys.stderr.isatty():
            return  # a bar redrawn with \r is noise in a log file: log lines instead
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def tick(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def update(self, step: int, record: dict[str, Any]) -> None:
        text = (
            f"loss={record['loss']:.4f} lr={record['lr']:.2e} grad={record['grad_norm']:.2f} "
            f"{record['samples_per_s']:.0f} samples/s"
        )
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.tick(step)
        elif self.enabled:
            elapsed = time.monotonic() - self._t0
            rate = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
            eta = _clock((self.total - step) / rate) if rate > 0 else "?"
            log.info("step %d/%d %s %.2f steps/s elapsed %s ETA %s", step, self.total, text, rate, _clock(elapsed), eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
