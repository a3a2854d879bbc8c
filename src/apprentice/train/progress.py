"""Progress bar: loss, lr, steps/s and ETA (tqdm when it is installed, log lines otherwise)."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("apprentice.train")


class Progress:
    def __init__(self, total: int, start: int, enabled: bool = True) -> None:
        self.bar = None
        self.enabled = enabled
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=total,
            initial=start,
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not sys.stderr.isatty() and None,
        )

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
            log.info("step %d %s", step, text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
