"""HIL-SERL on gym-hil PandaPickCube: from <= 10 scripted demos, SAC online with the scripted operator
intervening, and the same run without interventions. Prints one JSON object: success over seeded eval
episodes vs env steps and wall time, intervention rate vs env steps, learner updates/s, actor env
steps/s; writes a PNG of success and intervention rate vs env steps.

    python benchmarks/hilserl_pickcube.py --device cuda                  # the full run (GPU box)
    python benchmarks/hilserl_pickcube.py --quick                        # a few minutes on CPU
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apprentice.rl.hilserl import HILSerlConfig, read_log, train_hilserl


def run(name: str, args: argparse.Namespace, interventions: bool, out_root: Path) -> dict[str, Any]:
    cfg = HILSerlConfig(
        output_dir=str(out_root / name), obs_type=args.obs_type, num_demos=args.demos, online_steps=args.steps,
        batch_size=args.batch_size, interventions=interventions, eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes, save_freq=args.steps, seed=args.seed, device=args.device,
        policy={"utd_ratio": args.utd_ratio},
    )
    t0 = time.perf_counter()
    train_hilserl(cfg)
    wall = time.perf_counter() - t0
    episodes = read_log(cfg.output_dir, "episodes")
    evals = read_log(cfg.output_dir, "eval")
    speed = read_log(cfg.output_dir, "throughput")[-1]
    # Intervention rate per window of env steps (episodes grouped by where they ended).
    window = max(args.steps // 20, 1)
    rate: dict[int, list[float]] = {}
    for e in episodes:
        rate.setdefault((e["env_step"] - 1) // window, []).append(e["intervention_rate"])
    curve = [{"env_step": (k + 1) * window, "intervention_rate": sum(v) / len(v)} for k, v in sorted(rate.items())]
    reached = next((e for e in evals if e["success_rate"] >= 0.9), None)
    return {
        "interventions": interventions,
        "wall_s": round(wall, 1),
        "final_success_rate": evals[-1]["success_rate"] if evals else None,
        "best_success_rate": max((e["success_rate"] for e in evals), default=None),
        "env_steps_to_90pct": reached["env_step"] if reached else None,
        "wall_s_to_90pct": round(reached["wall_s"], 1) if reached else None,
        "eval": evals,
        "intervention_rate": curve,
        "train_success_rate_last_20": sum(e["success"] for e in episodes[-20:]) / max(len(episodes[-20:]), 1),
        "episodes": len(episodes),
        "learner_updates_per_s": round(speed["updates_per_s"], 1),
        "actor_env_steps_per_s": round(speed["env_steps_per_s"], 1),
    }


def plot(results: dict[str, dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_pil(results, path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in results.items():
        axes[0].plot([e["env_step"] for e in r["eval"]], [e["success_rate"] for e in r["eval"]], "o-", label=name)
        axes[1].plot([c["env_step"] for c in r["intervention_rate"]],
                     [c["intervention_rate"] for c in r["intervention_rate"]], "o-", label=name)
    axes[0].set(xlabel="env steps", ylabel="eval success rate", ylim=(-0.02, 1.02), title="success (seeded eval)")
    axes[1].set(xlabel="env steps", ylabel="intervention rate", ylim=(-0.02, 1.02), title="interventions")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return "matplotlib"


def _plot_pil(results: dict[str, dict[str, Any]], path: Path) -> str:
    from PIL import Image, ImageDraw

    w, h, pad = 900, 360, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    colors = [(31, 119, 180), (255, 127, 14)]
    x_max = max((p["env_step"] for r in results.values() for p in [*r["eval"], *r["intervention_rate"]]),
                default=1) or 1
    for panel, key in enumerate(("eval", "intervention_rate")):
        x0 = pad + panel * (w // 2)
        x1 = x0 + w // 2 - 2 * pad
        draw.rectangle([x0, pad, x1, h - pad], outline="black")
        draw.text((x0, 10), "eval success" if panel == 0 else "intervention rate", fill="black")
        for color, r in zip(colors, results.values(), strict=False):
            field = "success_rate" if key == "eval" else "intervention_rate"
            pts = [(x0 + (x1 - x0) * p["env_step"] / x_max, h - pad - (h - 2 * pad) * p[field]) for p in r[key]]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        draw.text((x0, h - pad + 5), f"0 .. {x_max} env steps; y 0 .. 1", fill="black")
    img.save(path)
    return "PIL"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="a short CPU run (fewer steps and eval episodes)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default 30000, quick 1500)")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--obs_type", default="environment_state_agent_pos")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--utd_ratio", type=int, default=2)
    p.add_argument("--eval_freq", type=int, default=None)
    p.add_argument("--eval_episodes", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_baseline", action="store_true", help="skip the run without interventions")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    p.add_argument("--png", default="hilserl_pickcube.png")
    args = p.parse_args(argv)
    args.steps = args.steps or (1500 if args.quick else 30_000)
    args.eval_freq = args.eval_freq or max(args.steps // 6, 1)
    args.eval_episodes = args.eval_episodes or (10 if args.quick else 50)
    if args.quick:
        args.batch_size = min(args.batch_size, 128)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        results = {"with_interventions": run("with_interventions", args, True, root)}
        if not args.no_baseline:
            results["without_interventions"] = run("without_interventions", args, False, root)
    backend = plot(results, Path(args.png))
    report = {
        "benchmark": "hilserl_pickcube", "device": args.device, "obs_type": args.obs_type, "demos": args.demos,
        "env_steps": args.steps, "batch_size": args.batch_size, "utd_ratio": args.utd_ratio,
        "eval_episodes": args.eval_episodes, "png": str(args.png), "plot_backend": backend, **results,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
