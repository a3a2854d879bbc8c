"""What a run leaves behind besides checkpoints: logs/compile.json (warm-up cost, how the step ran),
logs/train.jsonl readers, the persistent torch.compile cache, and the optional wandb run."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from apprentice.train.config import TrainConfig, TrainError
from apprentice.train.step import TrainStep

log = logging.getLogger("apprentice.train")


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its artifacts across runs (inductor's FX-graph and AOTAutograd caches,
    Triton kernels): $TORCHINDUCTOR_CACHE_DIR if set, else $XDG_CACHE_HOME/apprentice/torchinductor
    (~/.cache/...) — not torch's default under /tmp, which does not survive a reboot."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "apprentice" / "torchinductor"


def enable_compile_cache() -> None:
    root = compile_cache_dir()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(functorch_config, "enable_autograd_cache"):
        functorch_config.enable_autograd_cache = True


def report_compile(out: Path, cfg: TrainConfig, step_fn: TrainStep, seconds: float, steps: int) -> None:
    """The warm-up cost (compilation, autotuning, capture) apart from the steady samples/s."""
    info = {
        "compile_s": round(seconds, 3),
        "warmup_steps": steps,
        "compile": cfg.compile,
        "compile_mode": cfg.compile_mode if cfg.compile else None,
        "cuda_graphs": cfg.cuda_graphs,
        "captured": step_fn.captured,
        "captures": step_fn.captures,
        "capture_s": round(step_fn.capture_s, 3),
        "capture_error": step_fn.fallback,
        "cache_dir": str(compile_cache_dir()) if cfg.compile else None,
    }
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / "compile.json").write_text(json.dumps(info, indent=2))
    log.info(
        "warm-up (%s) took %.1fs over %d step(s)%s",
        "+".join(k for k, on in (("compile", cfg.compile), ("cuda graph", step_fn.captured)) if on) or "eager",
        seconds,
        steps,
        f"; capture failed: {step_fn.fallback}" if step_fn.fallback else "",
    )


def report_captures(out: Path, step_fn: TrainStep) -> None:
    """The capture fields of logs/compile.json as they stand at the end of the run."""
    path = out / "logs" / "compile.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(
        captured=step_fn.captured,
        captures=step_fn.captures,
        capture_s=round(step_fn.capture_s, 3),
        capture_error=step_fn.fallback,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))


def read_compile_report(output_dir: str | Path) -> dict[str, Any]:
    """logs/compile.json of a run: compile_s (warm-up wall time) and how the step ran."""
    return json.loads((Path(output_dir) / "logs" / "compile.json").read_text())


def open_wandb(cfg: TrainConfig, out: Path) -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise TrainError("--wandb.enable=true needs the wandb package: pip install wandb") from exc
    return wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        notes=cfg.wandb.notes,
        id=cfg.wandb.run_id,
        mode=cfg.wandb.mode,
        name=cfg.job_name,
        dir=str(out),
        config=cfg.to_dict(),
        resume="allow",
    )


def read_metrics(output_dir: str | Path) -> list[dict[str, float]]:
    """The logged training records (one per log step) of a run."""
    path = Path(output_dir) / "logs" / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
