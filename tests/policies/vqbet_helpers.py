"""VQ-BeT test helpers: a tiny real dataset (DatasetWriter: parquet + mp4) whose actions follow what the
camera shows, and a tiny VQ-BeT config (the real architecture, shrunk so a CPU step takes milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["j1", "j2", "j3"]},
    "observation.images.top": {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["j1", "j2"]},
}

TINY = {
    "n_obs_steps": 2,
    "n_action_pred_token": 2,
    "action_chunk_size": 3,
    "crop_shape": [16, 16],
    "spatial_softmax_num_keypoints": 4,
    "n_vqvae_training_steps": 3,
    "vqvae_n_embed": 8,
    "vqvae_embedding_dim": 16,
    "vqvae_enc_hidden_dim": 32,
    "gpt_block_size": 16,
    "gpt_input_dim": 32,
    "gpt_output_dim": 32,
    "gpt_n_layer": 1,
    "gpt_n_head": 2,
    "gpt_hidden_dim": 32,
    "scheduler_warmup_steps": 2,
}


def write_tiny_dataset(root: Path, episodes: int = 3, length: int = 20, seed: int = 0) -> Path:
    from apprentice.dataset import DatasetWriter

    rng = np.random.default_rng(seed)
    with DatasetWriter.create(root, features=FEATURES, fps=10, robot_type="test_arm", vcodec="h264") as w:
        for _ in range(episodes):
            target = rng.uniform(-1, 1, size=2)
            state = np.zeros(3, dtype=np.float32)
            for t in range(length):
                img = np.zeros((32, 32, 3), dtype=np.uint8)
                r, c = int((target[0] + 1) * 10) + 2, int((target[1] + 1) * 10) + 2
                img[r : r + 6, c : c + 6] = (255, 200, 40)
                action = (0.3 * target + 0.02 * t * np.array([1.0, -1.0])).astype(np.float32)
                w.add_frame({"observation.state": state.copy(), "observation.images.top": img, "action": action})
                state = np.array([*action, t / length], dtype=np.float32)
            w.save_episode(task="reach the target")
    return root


def tiny_flags(**extra: object) -> list[str]:
    """`apprentice train` flags for the tiny VQ-BeT, plus `extra` (policy fields as policy.<name>)."""
    flags = ["--policy.type=vqbet"]
    for key, value in {**TINY, **extra}.items():
        text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
        flags.append(f"--policy.{key}={text}")
    return flags


# --- a checkpoint in lerobot's layout (lerobot_vqbet/: files lerobot 0.4.4 wrote for the TINY config) ---
LEROBOT_SPEC = Path(__file__).resolve().parent / "lerobot_vqbet"


def spec_keys(spec: Path = LEROBOT_SPEC) -> dict[str, tuple[str, list[int]]]:
    import json

    out = {}
    for line in (spec / "model.keys.txt").read_text().splitlines():
        name, dtype, shape = line.split("\t")
        out[name] = (dtype, json.loads(shape))
    return out


def build_lerobot_checkpoint(root: Path, spec: Path = LEROBOT_SPEC, seed: int = 0) -> dict:
    """A pretrained_model/ dir as lerobot-train writes it for VQ-BeT: lerobot's key names and files, seeded
    random weights (structural buffers — causal masks, target indices, keypoint grid — hold their real
    values, and the VQ-VAE is marked trained). Also importable by the lerobot interpreter (torch only)."""
    import json
    import shutil

    import torch
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    config = json.loads((spec / "config.json").read_text())
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, (dtype, shape) in spec_keys(spec).items():
        if name.endswith("select_target_actions_indices"):
            value = torch.stack([torch.arange(i, i + shape[1]) for i in range(shape[0])])
        elif name.endswith(".attn.bias"):
            value = torch.tril(torch.ones(shape[-1], shape[-1])).view(shape)
        elif name.endswith("pos_grid"):
            side = round(shape[0] ** 0.5)  # square crops here
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
            value = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1) if side > 1 else -torch.ones(1, 2)
        elif dtype == "bool":
            value = torch.ones(shape, dtype=torch.bool)  # discretized, freeze_codebook: the GPT phase
        elif name.endswith(("initted", "cluster_size")):
            value = torch.ones(shape)
        elif name.endswith(("_codebook.embed", "embed_avg")):
            value = torch.randn(shape, generator=gen)  # distinct codes
        else:
            value = torch.randn(shape, generator=gen) * 0.1
        weights[name] = value
    save_file(weights, str(root / "model.safetensors"))
    stats = {}
    for key, dim in (("observation.state", [3]), ("action", [2]), ("observation.images.top", [3, 1, 1])):
        lo = torch.rand(dim, generator=gen) - 1.0
        stats |= {f"{key}.min": lo, f"{key}.max": lo + 1.5, f"{key}.mean": lo + 0.5, f"{key}.std": lo + 1.2}
    save_file(stats, str(root / "policy_preprocessor_step_3_normalizer_processor.safetensors"))
    save_file(stats, str(root / "policy_postprocessor_step_0_unnormalizer_processor.safetensors"))
    for name in ("config.json", "policy_preprocessor.json", "policy_postprocessor.json"):
        shutil.copy(spec / name, root / name)
    assert config["type"] == "vqbet"
    return weights


def rollout_inputs(steps: int = 8, seed: int = 1) -> list[dict]:
    """A fixed sequence of raw observations (batch 2) to act on."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [
        {
            "observation.state": torch.randn(2, 3, generator=gen),
            "observation.images.top": torch.rand(2, 3, 32, 32, generator=gen),
        }
        for _ in range(steps)
    ]
