"""The one config file `apprentice learner` and `apprentice actor` share, plus lerobot-style dotted flags.

    {"algorithm": {"type": "sac", ...},          # built by the factory registered under `type`
     "learner":   {"output_dir", "port", "utd_ratio", "features", ...},   # LearnerConfig
     "actor":     {"online_steps", "max_episode_steps", "fps", "seed"},   # ActorConfig
     "client":    {"learner_host", "learner_port", "outbox_capacity", ...},  # ActorClientConfig
     "env":       {"type": "gym_hil_pick_cube", "obs_type": ..., ...}}      # apprentice.sim task + kwargs

JSON or YAML. ``--learner.port=50052`` overrides ``learner.port``. The learner needs ``learner.features``
or an ``env`` to read them from (observation keys + ``action``, dtype and shape); both processes read
the same file, so the handshake only fails when the two machines' files or envs really differ.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from apprentice.rl.actor import ActorConfig
from apprentice.rl.algorithm import OnlineAlgorithm
from apprentice.rl.checkpoint import LearnerError
from apprentice.rl.learner import LearnerConfig
from apprentice.rl.transport.actor_client import ActorClientConfig

AlgorithmFactory = Callable[[Mapping[str, Any], Mapping[str, Mapping[str, Any]]], OnlineAlgorithm]
# type -> "module:function" taking (algorithm config, features); imported on first use
ALGORITHMS: dict[str, str | AlgorithmFactory] = {
    "sac": "apprentice.rl.sac_factory:make_sac",
    "hilserl": "apprentice.rl.sac_factory:make_sac",  # the workflow's name for the same algorithm
}


def register_algorithm(name: str, factory: str | AlgorithmFactory) -> None:
    ALGORITHMS[name] = factory


def make_algorithm(config: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> OnlineAlgorithm:
    kind = config.get("type")
    factory = ALGORITHMS.get(str(kind))
    if factory is None:
        raise LearnerError(f"algorithm.type {kind!r} is not registered; known: {sorted(ALGORITHMS) or 'none'} "
                              "(apprentice.rl.run_config.register_algorithm)")
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory({k: v for k, v in config.items() if k != "type"}, features)


@dataclass
class OnlineRunConfig:
    algorithm: dict[str, Any]
    learner: dict[str, Any]
    actor: dict[str, Any]
    client: dict[str, Any]
    env: dict[str, Any] | None = None

    def learner_config(self) -> LearnerConfig:
        data = dict(self.learner)
        if not data.get("features"):
            data["features"] = self.features()
        return _build(LearnerConfig, data, "learner")

    def actor_config(self) -> ActorConfig:
        return _build(ActorConfig, self.actor, "actor")

    def client_config(self) -> ActorClientConfig:
        return _build(ActorClientConfig, self.client, "client")

    def make_env(self) -> Any:
        if not self.env or "type" not in self.env:
            raise LearnerError("the config has no env.type (an apprentice.sim task, e.g. gym_hil_pick_cube); "
                                  "a real robot's actor is the ROS node (`apprentice rl-actor`) or RobotEnv")
        from apprentice.sim import make_env

        kwargs = {k: v for k, v in self.env.items() if k != "type"}
        return make_env(self.env["type"], **kwargs)

    def features(self) -> dict[str, dict[str, Any]]:
        """learner.features, or the env's: each observation key and action (dtype, shape)."""
        if self.learner.get("features"):
            return dict(self.learner["features"])
        env = self.make_env()
        try:
            spaces = dict(env.observation_space.spaces)
            table = {k: {"dtype": s.dtype.name, "shape": list(s.shape)} for k, s in spaces.items()}
            table["action"] = {"dtype": "float32", "shape": list(env.action_space.shape)}
        finally:
            env.close()
        return table


def _build(cls: type, data: Mapping[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise LearnerError(f"config section {section}: unknown option(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> OnlineRunConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise LearnerError(f"--config {path}: {exc.strerror}; pass the online run's JSON/YAML file") from exc
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise LearnerError(f"--config {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    data = dict(data or {})
    for flag in overrides:
        key, eq, value = flag.removeprefix("--").partition("=")
        section, dot, name = key.partition(".")
        if not (eq and dot) or section not in ("algorithm", "learner", "actor", "client", "env"):
            raise LearnerError(f"{flag}: expected --<algorithm|learner|actor|client|env>.<option>=<value>")
        data.setdefault(section, {})[name] = yaml.safe_load(value)
    unknown = sorted(set(data) - {"algorithm", "learner", "actor", "client", "env"})
    if unknown:
        raise LearnerError(f"{path}: unknown section(s) {unknown}; sections: algorithm learner actor client env")
    return OnlineRunConfig(data.get("algorithm") or {}, data.get("learner") or {}, data.get("actor") or {},
                           data.get("client") or {}, data.get("env"))
