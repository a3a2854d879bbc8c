"""FAST tokenizer on recorded action chunks: round-trip error vs the quantisation bound, tokens per chunk.

Records `--episodes` scripted-expert episodes of the sim `reach` task (or reads `--root`), normalises the
actions with the dataset's mean/std (what π0-FAST tokenizes), cuts every `--horizon`-step chunk, fits the
BPE on the first 80% of episodes and measures on the held-out 20%. Prints one JSON object.

    python benchmarks/fast_tokenizer.py [--episodes 20] [--horizon 50] [--scale 10] [--vocab-size 1024]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from apprentice.dataset import LeRobotDataset
from apprentice.policies.pi0fast import FastTokenizer
from apprentice.sim.record import record


def chunks_of(actions: np.ndarray, episodes: np.ndarray, keep: set[int], horizon: int) -> list[np.ndarray]:
    out = []
    for e in sorted(keep):
        ep = actions[episodes == e]
        out += [ep[i : i + horizon] for i in range(0, len(ep) - horizon + 1)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--root", default=None, help="a recorded dataset instead of recording reach episodes")
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--vocab-size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "reach"
        t0 = time.perf_counter()
        if not args.root:
            record("reach", root, args.episodes, log=lambda _: None)
        record_s = time.perf_counter() - t0
        ds = LeRobotDataset(root)
        actions = np.asarray(ds.column("action"), dtype=np.float64)
        episodes = np.asarray(ds.column("episode_index")).reshape(-1)
        stats = ds.meta.stats["action"]
    mean, std = np.asarray(stats["mean"]), np.maximum(np.asarray(stats["std"]), 1e-8)
    normed = (actions - mean) / std
    ids = sorted(set(episodes.tolist()))
    split = max(1, int(0.8 * len(ids)))
    train = chunks_of(normed, episodes, set(ids[:split]), args.horizon)
    test = chunks_of(normed, episodes, set(ids[split:]) or set(ids[-1:]), args.horizon)
    t0 = time.perf_counter()
    tok = FastTokenizer.fit(train, scale=args.scale, vocab_size=args.vocab_size, time_horizon=args.horizon,
                            action_dim=normed.shape[1])
    fit_s = time.perf_counter() - t0
    batch = np.stack(test)
    t0 = time.perf_counter()
    tokens = tok.encode(batch)
    encode_s = time.perf_counter() - t0
    decoded = tok.decode(tokens)
    rms = np.sqrt(((decoded - batch) ** 2).mean(axis=1))  # per chunk and action dim, over time
    lengths = np.array([len(t) for t in tokens])
    print(json.dumps({
        "benchmark": "fast_tokenizer",
        "data": str(args.root) if args.root else f"reach, {args.episodes} recorded expert episodes",
        "horizon": args.horizon, "action_dim": int(normed.shape[1]), "scale": args.scale,
        "vocab_size": args.vocab_size, "train_chunks": len(train), "test_chunks": len(test),
        "quantisation_bound_rms": tok.quantisation_bound,
        "rms_error_max": float(rms.max()), "rms_error_mean": float(rms.mean()),
        "abs_error_max": float(np.abs(decoded - batch).max()),
        "within_bound": bool(rms.max() <= tok.quantisation_bound + 1e-12),
        "tokens_per_chunk_mean": float(lengths.mean()), "tokens_per_chunk_max": int(lengths.max()),
        "coefficients_per_chunk": args.horizon * int(normed.shape[1]),
        "compression": float(args.horizon * normed.shape[1] / lengths.mean()),
        "decode_fallbacks": tok.stats.fallbacks,
        "record_s": round(record_s, 1), "fit_s": round(fit_s, 2), "encode_ms_per_chunk": 1e3 * encode_s / len(test),
    }))


if __name__ == "__main__":
    main()
