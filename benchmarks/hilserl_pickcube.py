"""HIL-SERL on gym-hil PandaPickCube: from <= 10 scripted demos, SAC online with the scripted operator
intervening, and the same run without interventions, the two in parallel processes. Prints one JSON
object (and rewrites `--json-out` every few seconds, so a run cut short still returns its curve): success
over seeded eval episodes vs env steps and wall time, intervention rate vs env steps, learner updates/s at
utd_ratio, actor control-loop rate; writes a PNG of success and intervention rate vs env steps.

    python benchmarks/hilserl_pickcube.py --device cuda --budget-s 500 --json-out hilserl.json   # GPU box
    python benchmarks/hilserl_pickcube.py --quick                        # a few minutes on CPU
    python benchmarks/hilserl_pickcube.py --plot-from hilserl.json --png hilserl.png   # PNG from a JSON

Each variant trains until its wall budget (`--budget-s` minus `--final-reserve-s`), then scores
`--final_eval_episodes` seeded episodes; evaluations run in `--eval_workers` processes per variant while
training goes on, and no checkpoint (replay buffers) is written inside the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {"with_interventions": True, "without_interventions": False}


def train_variant(name: str, args: argparse.Namespace, root: Path) -> None:
    """The child process: one variant, logs under root/name/logs."""
    import torch

    from apprentice.rl.hilserl import HILSerlConfig, train_hilserl

    torch.set_num_threads(args.threads)
    budget = max(args.train_deadline - time.time(), 1.0)  # the parent's clock: imports and demos count
    cfg = HILSerlConfig(
        output_dir=str(root / name), obs_type=args.obs_type, num_demos=args.demos, online_steps=args.steps,
        batch_size=args.batch_size, interventions=VARIANTS[name], eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes, final_eval_episodes=args.final_eval_episodes,
        eval_workers=args.eval_workers, budget_s=budget, checkpoints=False, seed=args.seed,
        device=args.device, policy={"utd_ratio": args.utd_ratio},
    )
    train_hilserl(cfg)


def summarize(run_dir: Path, interventions: bool, window: int) -> dict[str, Any]:
    """What the logs of one variant say so far (a run still going, or cut, reports its partial curve)."""
    from apprentice.rl.hilserl import read_log

    episodes = read_log(run_dir, "episodes")
    evals = read_log(run_dir, "eval")
    speed = (read_log(run_dir, "throughput") or [None])[-1]
    # Intervention rate per window of env steps (episodes grouped by where they ended).
    rate: dict[int, list[dict[str, Any]]] = {}
    for e in episodes:
        rate.setdefault((e["env_step"] - 1) // window, []).append(e)
    curve = [{"env_step": v[-1]["env_step"], "episodes": len(v),
              "intervention_rate": round(sum(e["intervention_rate"] for e in v) / len(v), 4)}
             for _, v in sorted(rate.items())]
    reached = next((e for e in evals if e["success_rate"] >= 0.9), None)
    last = episodes[-1] if episodes else {}
    out: dict[str, Any] = {
        "interventions": interventions,
        "finished": speed is not None,
        "env_steps": last.get("env_step", 0),
        "episodes": len(episodes),
        "final_success_rate": evals[-1]["success_rate"] if speed is not None and evals else None,
        "final_eval_episodes": evals[-1].get("episodes") if speed is not None and evals else None,
        "best_success_rate": max((e["success_rate"] for e in evals), default=None),
        "env_steps_to_90pct": reached["env_step"] if reached else None,
        "wall_s_to_90pct": round(reached["wall_s"], 1) if reached else None,
        "eval": evals,
        "intervention_rate": curve,
        "train_success_rate_last_20": sum(e["success"] for e in episodes[-20:]) / max(len(episodes[-20:]), 1),
        "optimization_steps": last.get("optimization_step", 0),
        "train_wall_s": round(last.get("wall_s", 0.0), 1),
    }
    if speed is not None:
        out.update(learner_updates_per_s=round(speed["updates_per_s"], 1),
                   actor_control_loop_hz=round(speed.get("control_loop_hz", 0.0), 1),
                   actor_env_steps_per_s=round(speed["env_steps_per_s"], 1))
    elif last.get("wall_s"):  # still running: the loop rate so far
        out["actor_control_loop_hz"] = round(last["env_step"] / last["wall_s"], 1)
    return out


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
    for i, (color, name) in enumerate(zip(colors, results, strict=False)):
        draw.text((w // 2 - 60, 10 + 12 * i), name, fill=color)  # the legend
    img.save(path)
    return "PIL"


def _write(path: str | None, report: dict[str, Any]) -> None:
    if path:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(path)  # readers never see half a file


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="a short CPU run (fewer steps and eval episodes)")
    p.add_argument("--steps", type=int, default=None, help="env steps cap per run (default 100000, quick 1500)")
    p.add_argument("--budget-s", type=float, default=None, help="wall seconds for the whole benchmark "
                   "(default 500, quick 240); training stops --final-reserve-s before it")
    p.add_argument("--final-reserve-s", type=float, default=None,
                   help="seconds kept for the final eval (default 60, quick 50)")
    p.add_argument("--json-out", default=None, help="rewrite the report here every few seconds")
    p.add_argument("--plot-from", default=None, help="only draw --png from this report JSON")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--obs_type", default="environment_state_agent_pos")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--utd_ratio", type=int, default=2)
    p.add_argument("--eval_freq", type=int, default=None, help="env steps between evals (default 1000)")
    p.add_argument("--eval_episodes", type=int, default=None, help="episodes per eval along the way (20, quick 3)")
    p.add_argument("--final_eval_episodes", type=int, default=50)
    p.add_argument("--eval_workers", type=int, default=None, help="eval processes per variant (6, quick 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_baseline", action="store_true", help="skip the run without interventions")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    p.add_argument("--png", default="hilserl_pickcube.png")
    p.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)  # the child process
    p.add_argument("--train-deadline", type=float, default=0.0, help=argparse.SUPPRESS)  # epoch seconds
    args = p.parse_args(argv)
    if args.plot_from:
        report = json.loads(Path(args.plot_from).read_text())
        runs = {k: v for k, v in report.items() if k in VARIANTS}
        print(json.dumps({"png": args.png, "plot_backend": plot(runs, Path(args.png))}))
        return 0
    args.steps = args.steps or (1500 if args.quick else 100_000)
    args.budget_s = args.budget_s or (240.0 if args.quick else 500.0)
    args.final_reserve_s = args.final_reserve_s if args.final_reserve_s is not None else (50.0 if args.quick
                                                                                          else 60.0)
    args.eval_freq = args.eval_freq or (500 if args.quick else 1000)
    args.eval_episodes = args.eval_episodes or (3 if args.quick else 20)
    args.eval_workers = args.eval_workers if args.eval_workers is not None else (1 if args.quick else 6)
    if args.quick:
        args.batch_size = min(args.batch_size, 128)
        args.final_eval_episodes = min(args.final_eval_episodes, 5)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        if args.variant:
            train_variant(args.variant, args, root)
            return 0
        return _drive(args, root)


def _drive(args: argparse.Namespace, root: Path) -> int:
    """Both variants as parallel child processes; the report is rebuilt from their logs as they go."""
    t0 = time.perf_counter()
    names = [n for n in VARIANTS if not (args.no_baseline and not VARIANTS[n])]
    procs = {}
    deadline = time.time() + max(args.budget_s - args.final_reserve_s, 1.0)
    for name in names:
        cmd = [sys.executable, __file__, "--variant", name, "--out", str(root),
               "--train-deadline", str(deadline), *_child_flags(args)]
        log_path = root / f"{name}.log"
        root.mkdir(parents=True, exist_ok=True)
        # Own process group each: stopping a variant also stops its eval workers.
        procs[name] = subprocess.Popen(cmd, stdout=log_path.open("w"), stderr=subprocess.STDOUT, env=os.environ,
                                       start_new_session=True)

    def stop(sig: int = signal.SIGKILL) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    # `timeout` (the device script's backstop) sends SIGTERM: stop the children, still write the report.
    signal.signal(signal.SIGTERM, lambda *_: stop())
    window = max(args.eval_freq // 2, 1)
    config = {
        "benchmark": "hilserl_pickcube", "device": args.device, "obs_type": args.obs_type, "demos": args.demos,
        "env_steps_cap": args.steps, "batch_size": args.batch_size, "utd_ratio": args.utd_ratio,
        "eval_freq": args.eval_freq, "eval_episodes": args.eval_episodes,
        "final_eval_episodes": args.final_eval_episodes, "budget_s": args.budget_s,
        "final_reserve_s": args.final_reserve_s, "eval_workers": args.eval_workers, "threads": args.threads,
    }

    def report() -> dict[str, Any]:
        runs = {n: summarize(root / n, VARIANTS[n], window) for n in names}
        for n, proc in procs.items():
            runs[n]["returncode"] = proc.poll()
        return {**config, "wall_s": round(time.perf_counter() - t0, 1), **runs}

    hard_stop = args.budget_s + 20.0  # a child past its budget this long is stopped (its curve stays)
    while any(proc.poll() is None for proc in procs.values()):
        if time.perf_counter() - t0 > hard_stop:
            stop()
            break
        _write(args.json_out, report())
        time.sleep(2.0)
    for proc in procs.values():
        proc.wait()
    final = report()
    for n in names:
        if procs[n].returncode:
            final[n]["log_tail"] = (root / f"{n}.log").read_text()[-2000:]
    final["png"] = str(args.png)
    final["plot_backend"] = plot({n: final[n] for n in names}, Path(args.png))
    _write(args.json_out, final)
    print(json.dumps(final))
    return 0 if all(procs[n].returncode == 0 for n in names) else 1


def _child_flags(args: argparse.Namespace) -> list[str]:
    flags = {"--device": args.device, "--steps": args.steps, "--demos": args.demos, "--obs_type": args.obs_type,
             "--batch_size": args.batch_size, "--utd_ratio": args.utd_ratio, "--eval_freq": args.eval_freq,
             "--eval_episodes": args.eval_episodes, "--final_eval_episodes": args.final_eval_episodes,
             "--eval_workers": args.eval_workers, "--threads": args.threads, "--seed": args.seed}
    return [x for k, v in flags.items() for x in (k, str(v))]


if __name__ == "__main__":
    sys.exit(main())
