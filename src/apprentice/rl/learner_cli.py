"""`apprentice learner`: the HIL-SERL learner on the GPU box (no ROS). Ctrl-C checkpoints and exits.

    apprentice learner --config online.yaml --host=0.0.0.0 --port=50051 --learner.token_file=FILE \
        [--learner.resume=true] [--learner.output_dir=outputs/hilserl] [--max_steps=N]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from apprentice.rl.checkpoint import LearnerError
from apprentice.rl.learner import Learner
from apprentice.rl.run_config import load_run_config, make_algorithm
from apprentice.rl.transport import TransportError


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """Run until --max_steps, SIGINT/SIGTERM, or ``stop`` (for callers that embed the learner)."""
    parser = argparse.ArgumentParser(prog="apprentice learner", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the online run's JSON/YAML (see apprentice.rl.run_config)")
    parser.add_argument("--max_steps", type=int, default=None, help="stop after this many updates (default: never)")
    parser.add_argument("--host", default=None, help="address to bind (= --learner.host; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (= --learner.port; default 50051)")
    args, overrides = parser.parse_known_args(argv)
    overrides += [f"--learner.{k}={v}" for k, v in (("host", args.host), ("port", args.port)) if v is not None]
    logging.basicConfig(level=logging.INFO, format="learner: %(message)s")
    try:
        run = load_run_config(args.config, overrides)
        config = run.learner_config()
        learner = Learner(make_algorithm(run.algorithm, config.features), config)
        port = learner.start()
    except (LearnerError, TransportError, ValueError) as exc:
        print(f"apprentice learner: {exc}", file=sys.stderr)
        return 2
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    print(f"learner on {config.host}:{port}, output {config.output_dir}; Ctrl-C saves and stops", flush=True)
    try:
        learner.run(stop, args.max_steps)
    finally:
        learner.stop(checkpoint=True)
    print(f"learner stopped at step {learner.step} ({learner.transitions} transitions)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
