"""`apprentice actor`: drive a simulated env (e.g. gym-hil's PandaPickCube) for a learner elsewhere.

    apprentice actor --config online.yaml --client.learner_host=gpu-box --client.learner_port=50051 \
        [--actor.online_steps=100000] [--intervention=scripted]

``--intervention=scripted`` lets the task's scripted expert take over when the policy drifts (the sim's
stand-in for a person with a leader arm). A real robot's actor is the ROS node: `apprentice rl-actor`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from apprentice.rl.actor import ScriptedIntervention, run_actor
from apprentice.rl.checkpoint import LearnerError
from apprentice.rl.run_config import load_run_config, make_algorithm
from apprentice.rl.transport import TransportError
from apprentice.rl.transport.actor_client import ActorClient
from apprentice.sim import SimError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apprentice actor", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the online run's JSON/YAML (the learner's file)")
    parser.add_argument("--intervention", choices=("none", "scripted"), default="none")
    parser.add_argument("--drift", type=float, default=0.5, help="scripted: action distance counted as drifting")
    parser.add_argument("--host", default=None, help="the learner's address (= --client.learner_host)")
    parser.add_argument("--port", type=int, default=None, help="the learner's port (= --client.learner_port)")
    args, overrides = parser.parse_known_args(argv)
    overrides += [f"--client.learner_{k}={v}" for k, v in (("host", args.host), ("port", args.port)) if v is not None]
    logging.basicConfig(level=logging.INFO, format="actor: %(message)s")
    try:
        run = load_run_config(args.config, overrides)
        features = run.features()
        env = run.make_env()
        algorithm = make_algorithm(run.algorithm, features)
        client = ActorClient(features, run.client_config())
        client.connect()
    except (LearnerError, TransportError, SimError, ValueError) as exc:
        print(f"apprentice actor: {exc}", file=sys.stderr)
        return 2
    intervention = None
    if args.intervention == "scripted":
        from apprentice.sim import make_expert

        intervention = ScriptedIntervention(make_expert(env), drift=args.drift)
    try:
        stats = run_actor(env, algorithm, client, run.actor_config(), intervention)
    except KeyboardInterrupt:
        stats = None
    finally:
        flushed = client.close(flush_timeout_s=10.0)
        env.close()
    if stats is not None:
        print(json.dumps({"steps": stats.steps, "episodes": stats.episodes, "successes": stats.successes,
                          "interventions": stats.interventions, "parameter_updates": stats.parameter_updates,
                          "control_hz": round(stats.control_hz, 1), "all_delivered": flushed}), flush=True)
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
