"""TD-MPC interchangeability with real lerobot, run in a side interpreter that has lerobot installed:

1. lerobot builds a small TDMPCPolicy and its processors and saves them as lerobot-train does
   (config.json, model.safetensors, policy_{pre,post}processor*.json/.safetensors);
2. model.safetensors is overwritten with seeded weights (lerobot's key names), stats likewise;
3. lerobot reloads that directory (from_pretrained) and acts on fixed observations with a fixed torch seed
   (MPPI planning, several steps, warm starts), and with π alone;
4. we load the same directory with `apprentice.policies.load_policy` and act with the same seed;
5. we save it with `save_policy`, and lerobot loads and runs that directory too.

Prints one JSON object (max abs action difference, key layout equality). With `--write-reference`, stores
lerobot's files and actions as tests/policies/data/tdmpc_lerobot_reference.json (what the test checks).

    python benchmarks/tdmpc_lerobot_compat.py --lerobot-python /work/lrvenv/bin/python [--write-reference]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "policies" / "data" / "tdmpc_lerobot_reference.json"
FEATURES = {
    "observation.image": {"type": "VISUAL", "shape": [3, 40, 40]},
    "observation.environment_state": {"type": "ENV", "shape": [3]},
    "observation.state": {"type": "STATE", "shape": [4]},
}
ACTION_DIM = 2
SMALL = {
    "horizon": 3,
    "latent_dim": 8,
    "mlp_dim": 16,
    "state_encoder_hidden_dim": 16,
    "image_encoder_hidden_dim": 4,
    "n_gaussian_samples": 16,
    "n_pi_samples": 4,
    "n_elites": 5,
    "cem_iterations": 2,
}
N_STEPS, SEED = 5, 7

LEROBOT_SIDE = r"""
import json, sys, warnings, torch
warnings.filterwarnings("ignore")
from safetensors.torch import load_file
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.tdmpc.configuration_tdmpc import TDMPCConfig
from lerobot.policies.tdmpc.modeling_tdmpc import TDMPCPolicy
from lerobot.policies.tdmpc.processor_tdmpc import make_tdmpc_pre_post_processors
mode, root = sys.argv[1], sys.argv[2]
if mode == "save":
    spec = json.loads(sys.argv[3])
    feats = {k: PolicyFeature(type=FeatureType[v["type"]], shape=tuple(v["shape"])) for k, v in spec["inputs"].items()}
    cfg = TDMPCConfig(input_features=feats,
                      output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec["action_dim"],))},
                      device="cpu", **spec["small"])
    stats = {k: {s: torch.tensor(v) for s, v in d.items()} for k, d in spec["stats"].items()}
    pre, post = make_tdmpc_pre_post_processors(cfg, dataset_stats=stats)
    policy = TDMPCPolicy(cfg)
    policy.save_pretrained(root); pre.save_pretrained(root); post.save_pretrained(root)
else:
    out, n_steps, seed = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    obs = {k: v for k, v in load_file(sys.argv[6]).items()}
    policy = TDMPCPolicy.from_pretrained(root).eval()
    from lerobot.policies.factory import make_pre_post_processors
    pre, post = make_pre_post_processors(policy.config, pretrained_path=root)
    result = {}
    for use_mpc in (True, False):
        policy.config.use_mpc = use_mpc
        policy.reset()
        torch.manual_seed(seed)
        actions = []
        for _ in range(n_steps):
            actions.append(post(policy.select_action(pre(dict(obs)))).tolist())
        result["mpc" if use_mpc else "pi"] = actions
    json.dump(result, open(out, "w"))
"""


def _stats() -> dict[str, dict[str, list[float]]]:
    gen = torch.Generator().manual_seed(1)
    low = -1.0 - torch.rand(ACTION_DIM, generator=gen)
    return {
        "action": {
            "min": low.tolist(),
            "max": (low + 2.5).tolist(),
            "mean": [0.0] * ACTION_DIM,
            "std": [1.0] * ACTION_DIM,
        },
        "observation.state": {"mean": [0.0] * 4, "std": [1.0] * 4, "min": [-1.0] * 4, "max": [1.0] * 4},
    }


def seeded_weights(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Weights for every key, in sorted key order from one seeded generator (the test regenerates them)."""
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(shapes[k], generator=gen) * 0.3 for k in sorted(shapes)}


def observations() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {
        "observation.image": torch.rand(2, *FEATURES["observation.image"]["shape"], generator=gen),
        "observation.environment_state": torch.randn(2, 3, generator=gen),
        "observation.state": torch.randn(2, 4, generator=gen),
    }


def ours(root: Path) -> dict[str, list]:
    from apprentice.policies import load_policy

    policy = load_policy(root)
    result = {}
    for use_mpc in (True, False):
        policy.config.use_mpc = use_mpc
        policy.reset()
        torch.manual_seed(SEED)
        result["mpc" if use_mpc else "pi"] = [policy.select_action(observations()).tolist() for _ in range(N_STEPS)]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lerobot-python", required=True)
    parser.add_argument("--write-reference", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pretrained_model"
        spec = {"inputs": FEATURES, "action_dim": ACTION_DIM, "small": SMALL, "stats": _stats()}
        side = [args.lerobot_python, "-c", LEROBOT_SIDE]
        subprocess.run([*side, "save", str(root), json.dumps(spec)], check=True)
        shapes = {k: list(v.shape) for k, v in load_file(str(root / "model.safetensors")).items()}
        save_file(seeded_weights(shapes), str(root / "model.safetensors"))
        obs_file = Path(tmp) / "obs.safetensors"
        save_file(observations(), str(obs_file))
        out = Path(tmp) / "actions.json"
        subprocess.run([*side, "act", str(root), str(out), str(N_STEPS), str(SEED), str(obs_file)], check=True)
        theirs = json.loads(out.read_text())
        mine = ours(root)
        diff = max(float((torch.tensor(theirs[k]) - torch.tensor(mine[k])).abs().max()) for k in ("mpc", "pi"))
        from apprentice.policies import load_policy, save_policy

        our_keys = {k: list(v.shape) for k, v in load_policy(root).state_dict().items()}
        # The other direction: our save_policy output, loaded and run by lerobot.
        ours_dir = Path(tmp) / "ours"
        save_policy(load_policy(root), ours_dir)
        out2 = Path(tmp) / "actions_ours_dir.json"
        subprocess.run([*side, "act", str(ours_dir), str(out2), str(N_STEPS), str(SEED), str(obs_file)], check=True)
        theirs2, mine2 = json.loads(out2.read_text()), ours(ours_dir)
        diff_ours_dir = max(
            float((torch.tensor(theirs2[k]) - torch.tensor(mine2[k])).abs().max()) for k in ("mpc", "pi")
        )
        if args.write_reference:
            files = {
                n: json.loads((root / n).read_text())
                for n in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json")
            }
            stats_files = {p.name: sorted(load_file(str(p))) for p in root.glob("*processor.safetensors")}
            REFERENCE.parent.mkdir(parents=True, exist_ok=True)
            REFERENCE.write_text(
                json.dumps(
                    {
                        "files": files,
                        "stats": _stats(),
                        "stats_files": stats_files,
                        "model_keys": shapes,
                        "seed": SEED,
                        "n_steps": N_STEPS,
                        "actions": theirs,
                    },
                    indent=1,
                )
            )
    print(
        json.dumps(
            {
                "benchmark": "tdmpc_lerobot_compat",
                "max_abs_action_diff": diff,
                "max_abs_action_diff_our_checkpoint_in_lerobot": diff_ours_dir,
                "same_state_dict_keys_and_shapes": our_keys == shapes,
                "n_keys": len(shapes),
                "steps_compared": N_STEPS,
            }
        )
    )
    return 0 if max(diff, diff_ours_dir) < 1e-5 and our_keys == shapes else 1


if __name__ == "__main__":
    sys.exit(main())
