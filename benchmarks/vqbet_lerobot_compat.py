"""VQ-BeT checkpoints across Apprentice and real lerobot (0.4.x), both ways, same inputs and seed:

  lerobot_layout_in_ours   a checkpoint in lerobot's layout (tests/policies/lerobot_vqbet: key names and
                           files lerobot wrote; seeded weights) acted on by lerobot and by us
  ours_in_lerobot          a checkpoint we trained (both phases, a few steps) and saved, loaded by lerobot's
                           VQBeTPolicy.from_pretrained + its processors, acted on by both (and the same
                           with sequentially_select=true)

Each reports the largest |action difference| over 8 select_action calls (2 refills of the action queue,
batch 2, torch.manual_seed(0)). lerobot runs in its own interpreter (--lerobot-python); this file is
also that side's script (--lerobot-side). Prints one JSON object.

  python benchmarks/vqbet_lerobot_compat.py --lerobot-python /work/lrvenv/bin/python
  ... --write-spec      regenerate tests/policies/lerobot_vqbet/ (spec files + reference_actions.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "policies"))  # vqbet_helpers: the checkpoint builder and inputs

from vqbet_helpers import LEROBOT_SPEC, TINY, build_lerobot_checkpoint, rollout_inputs  # noqa: E402


def _save_actions(actions: list[torch.Tensor], path: Path) -> None:
    path.write_text(json.dumps([a.tolist() for a in actions]))


# ------------------------------------------------------------------------------------------ lerobot side
def lerobot_act(directory: Path, out: Path) -> None:
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.vqbet.modeling_vqbet import VQBeTPolicy

    policy = VQBeTPolicy.from_pretrained(str(directory)).eval()
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(directory))
    torch.manual_seed(0)
    actions = [post(policy.select_action(pre(dict(obs)))) for obs in rollout_inputs()]
    _save_actions(actions, out)


def lerobot_spec(out: Path) -> None:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.vqbet.configuration_vqbet import VQBeTConfig
    from lerobot.policies.vqbet.modeling_vqbet import VQBeTPolicy

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()}
    cfg = VQBeTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (3,)),
                        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))}, device="cpu", push_to_hub=False,
        **fields)
    policy = VQBeTPolicy(cfg)
    zeros = {k: {s: torch.zeros(d) for s in ("min", "max", "mean", "std")}
             for k, d in (("observation.state", (3,)), ("action", (2,)), ("observation.images.top", (3, 1, 1)))}
    pre, post = make_pre_post_processors(cfg, dataset_stats=zeros)
    with tempfile.TemporaryDirectory() as tmp:
        policy.save_pretrained(tmp)
        pre.save_pretrained(tmp)
        post.save_pretrained(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
            (out / name).write_text(Path(tmp, name).read_text())
    (out / "model.keys.txt").write_text("".join(
        f"{k}\t{str(v.dtype).removeprefix('torch.')}\t{list(v.shape)}\n" for k, v in policy.state_dict().items()))
    (out / "optimizer_group_sizes.json").write_text(json.dumps([len(g["params"]) for g in policy.get_optim_params()]))


# --------------------------------------------------------------------------------------------- our side
def ours_act(directory: Path) -> list[torch.Tensor]:
    sys.path.insert(0, str(REPO / "src"))
    from apprentice.policies import load_policy

    policy = load_policy(directory)
    torch.manual_seed(0)
    return [policy.select_action(dict(obs)) for obs in rollout_inputs()]


def ours_trained(directory: Path, **fields: object) -> None:
    """A policy trained by us for a few steps of both phases (batch of random data), saved."""
    sys.path.insert(0, str(REPO / "src"))
    from apprentice.policies import make_config, make_policy, save_policy

    torch.manual_seed(0)
    config = make_config("vqbet", input_features={"observation.state": {"type": "STATE", "shape": [3]},
                                                  "observation.images.top": {"type": "VISUAL", "shape": [3, 32, 32]}},
                         output_features={"action": {"type": "ACTION", "shape": [2]}}, **{**TINY, **fields})
    stats = {"observation.state": {"min": -torch.ones(3), "max": torch.ones(3)},
             "action": {"min": -torch.ones(2), "max": torch.ones(2)}}
    policy = make_policy(config, stats).train()
    opt = policy.make_optimizer()
    n, length = config.n_obs_steps, len(config.action_delta_indices)
    batch = {"observation.state": torch.randn(4, n, 3), "observation.images.top": torch.rand(4, n, 3, 32, 32),
             "action": torch.rand(4, length, 2) * 2 - 1}
    for _ in range(config.n_vqvae_training_steps + 3):
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.config.device = "cpu"
    save_policy(policy, directory)


def _max_diff(a: list, b: list) -> float:
    return max(float((torch.tensor(x) - torch.tensor(y)).abs().max()) for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lerobot-python", help="interpreter with lerobot 0.4.x installed")
    parser.add_argument("--write-spec", action="store_true", help="regenerate tests/policies/lerobot_vqbet/")
    parser.add_argument("--lerobot-side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lerobot_side:
        kind, *paths = args.lerobot_side
        lerobot_act(Path(paths[0]), Path(paths[1])) if kind == "act" else lerobot_spec(Path(paths[0]))
        return 0
    if not args.lerobot_python:
        parser.error("--lerobot-python is required")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    def lerobot(*argv: str) -> None:
        proc = subprocess.run([args.lerobot_python, __file__, "--lerobot-side", *argv], env=env,
                              cwd=tempfile.gettempdir(), capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"lerobot side failed: {proc.stderr[-2000:]}")

    work = Path(tempfile.mkdtemp(prefix="vqbet-compat-"))
    if args.write_spec:
        lerobot("spec", str(LEROBOT_SPEC))
    results: dict = {"torch": torch.__version__}
    layout = work / "lerobot_layout"
    build_lerobot_checkpoint(layout)
    lerobot("act", str(layout), str(work / "lerobot_layout_actions.json"))
    theirs = json.loads((work / "lerobot_layout_actions.json").read_text())
    ours = [a.tolist() for a in ours_act(layout)]
    results["lerobot_layout_in_ours"] = {"max_abs_diff": _max_diff(ours, theirs), "identical": ours == theirs}
    if args.write_spec:
        (LEROBOT_SPEC / "reference_actions.json").write_text(json.dumps(theirs))
    variants = (("ours_in_lerobot", {}), ("ours_in_lerobot_sequentially_select", {"sequentially_select": True}))
    for name, fields in variants:
        trained = work / name
        ours_trained(trained, **fields)
        lerobot("act", str(trained), str(work / f"{name}_actions.json"))
        theirs = json.loads((work / f"{name}_actions.json").read_text())
        ours = [a.tolist() for a in ours_act(trained)]
        results[name] = {"max_abs_diff": _max_diff(ours, theirs), "identical": ours == theirs}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
