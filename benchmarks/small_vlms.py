"""Small random-initialised VLMs and tokenizers for SmolVLA, π0 and π0-FAST, built on the spot (no Hub here).

`policy_flags(policy_type, directory, dataset_root, text, quick)` writes what the policy loads (a SmolVLM2 config
dir + word-level tokenizer; a text tokenizer, and for π0-FAST a FAST tokenizer fitted on the dataset's own
normalised action chunks), registers the PaliGemma/Gemma size variants in this process, and returns the
`--policy.*` flags (plus the environment variables) that select them. It reuses the full-size benchmarks'
builders: benchmarks/smolvla_train.py's `write_vlm` and QUICK config, benchmarks/pi0_train.py's QUICK variants,
benchmarks/pi0fast_train.py's `text_tokenizer`.

Sizes ("small", the GPU runs): every VLM is 256 wide with 4 text layers and a 2-layer 128-wide vision tower over
128x128 frames (64 patches); π0's expert is 128 wide; SmolVLA's expert is 0.75x its VLM. A few million
parameters each: on an H200 thousands of steps fit in minutes, and reach_color's decision (which of two targets
the instruction names, both given in observation.state) needs no pretrained knowledge. `quick`: the CPU smoke
sizes of those benchmarks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from apprentice.policies.paligemma import GemmaVariant, VisionVariant, register_variant

VOCAB = 1024  # word ids at the bottom; π0-FAST's action tokens at the top (vocab - 1 - skip - t)
FAST_VOCAB = 512
FAST_SKIP = 8

SMOLVLM_SMALL_TEXT = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 512}
SMOLVLM_SMALL_VISION = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                        "num_attention_heads": 2, "patch_size": 16, "image_size": 128}
PI_SMALL_VLM = GemmaVariant(width=256, depth=4, mlp_dim=1024, num_heads=4, num_kv_heads=1, head_dim=64,
                            vocab_size=VOCAB, vision=VisionVariant(128, 256, 2, 2, 16, 256))
PI_SMALL_EXPERT = GemmaVariant(width=128, depth=4, mlp_dim=512, num_heads=4, num_kv_heads=1, head_dim=64,
                               vocab_size=VOCAB)


def _list(values: list[int]) -> str:
    return "[" + ",".join(map(str, values)) + "]"


def smolvla_flags(directory: Path, text: str, quick: bool) -> list[str]:
    from smolvla_train import QUICK, write_vlm

    if quick:
        config = QUICK
    else:
        config = {**QUICK, "text_config": {**QUICK["text_config"], **SMOLVLM_SMALL_TEXT},
                  "vision_config": {**QUICK["vision_config"], **SMOLVLM_SMALL_VISION}}
    write_vlm(directory, config, text)
    size = config["vision_config"]["image_size"]
    # The whole (random) VLM trains, not only the expert: its frozen random text layers would be a fixed
    # random map of the instruction, which the expert could still read, but slower.
    return [f"--policy.vlm_model_name={directory}", f"--policy.resize_imgs_with_padding={_list([size, size])}",
            f"--policy.num_vlm_layers={config['text_config']['num_hidden_layers']}",
            "--policy.train_expert_only=false", "--policy.load_vlm_weights=false"]


def pi0_flags(directory: Path, text: str, quick: bool) -> tuple[list[str], dict[str, str]]:
    from pi0_train import QUICK_EXPERT, QUICK_VLM
    from pi0fast_train import text_tokenizer

    vlm, expert = (QUICK_VLM, QUICK_EXPERT) if quick else (PI_SMALL_VLM, PI_SMALL_EXPERT)
    register_variant("lang_follow_vlm", vlm)
    register_variant("lang_follow_expert", expert)
    tokenizer = text_tokenizer(directory / "tokenizer", vlm.vocab_size, text)
    res = 28 if quick else 128
    flags = ["--policy.paligemma_variant=lang_follow_vlm", "--policy.action_expert_variant=lang_follow_expert",
             f"--policy.image_resolution={_list([res, res])}"]
    # π0 loads PaliGemma's tokenizer by name; this variable points it at the local one (README, "π0").
    return flags, {"APPRENTICE_PALIGEMMA_TOKENIZER": str(tokenizer)}


def action_chunks(dataset_root: Path, horizon: int, stride: int = 2) -> list[np.ndarray]:
    """Every `stride`-th (horizon, action_dim) window of each episode's actions, mean/std normalised with the
    dataset's stats (as π0-FAST normalises before the DCT); the last window of an episode repeats its final
    action, as a padded chunk ends held still."""
    import pyarrow.parquet as pq

    stats = json.loads((dataset_root / "meta" / "stats.json").read_text())["action"]
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"]) + 1e-8
    table = pq.read_table(sorted((dataset_root / "data").rglob("*.parquet")), columns=["action", "episode_index"])
    actions = (np.stack(table.column("action").to_numpy(zero_copy_only=False)) - mean) / std
    episodes = table.column("episode_index").to_numpy()
    chunks = []
    for ep in np.unique(episodes):
        a = actions[episodes == ep]
        a = np.concatenate([a, np.repeat(a[-1:], horizon - 1, axis=0)])
        chunks += [a[i : i + horizon] for i in range(0, len(a) - horizon + 1, stride)]
    return chunks


def pi0fast_flags(directory: Path, dataset_root: Path, text: str, quick: bool, horizon: int,
                  width: int | None = None, depth: int | None = None) -> list[str]:
    """`width`/`depth` override the Gemma's hidden size and layer count (4 heads of width/4 either way)."""
    from apprentice.policies.pi0fast import FastTokenizer
    from pi0fast_train import text_tokenizer

    base_width, base_depth, vision_width, res, patch = (64, 2, 64, 32, 8) if quick else (256, 4, 128, 128, 16)
    width, depth = width or base_width, depth or base_depth
    vlm_config = {
        "text_config": {"model_type": "gemma", "hidden_size": width, "intermediate_size": 4 * width,
                        "num_hidden_layers": depth, "num_attention_heads": 4, "num_key_value_heads": 1,
                        "head_dim": width // 4, "vocab_size": VOCAB},
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": vision_width,
                          "intermediate_size": 2 * vision_width, "num_hidden_layers": 2, "num_attention_heads": 2,
                          "image_size": res, "patch_size": patch, "projection_dim": width},
        "image_token_index": VOCAB - 1, "projection_dim": width}
    split_digits = os.environ.get("SMALL_VLM_WORD_NUMBERS") != "1"  # "1": the old whole-number words (A/B runs)
    tokenizer = text_tokenizer(directory / "text", VOCAB, text, split_digits=split_digits)
    chunks = action_chunks(dataset_root, horizon)
    fast = FastTokenizer.fit(chunks, vocab_size=FAST_VOCAB, time_horizon=horizon, action_dim=chunks[0].shape[1])
    fast_dir = fast.save(directory / "fast")
    # Over every chunk, not a sample: a training chunk longer than max_action_tokens loses its end token (and
    # its tail) to truncation, and a model taught such rows can decode past the end. (~1 s for 10k chunks.)
    longest = max(len(t) for t in fast.encode(chunks))
    tokens = longest + 16  # "Action: " ... "|" <eos> around the FAST tokens, with room for longer chunks
    return [f"--policy.vlm_config={json.dumps(vlm_config, separators=(',', ':'))}",
            f"--policy.text_tokenizer_name={tokenizer}", f"--policy.action_tokenizer_name={fast_dir}",
            f"--policy.image_resolution={_list([res, res])}", f"--policy.fast_skip_tokens={FAST_SKIP}",
            f"--policy.tokenizer_max_length={64 if split_digits else 48}", f"--policy.max_action_tokens={tokens}",
            f"--policy.max_decoding_steps={tokens}",
            # Decode with the <bos> entering as training shows it (a from-scratch model has only ever seen that).
            "--policy.decode_bos_in_prefix=false",
            # min/max, not mean/std, for the state: π0-FAST writes it into the prompt as 256 bins over [-1, 1],
            # and a mean/std-normalised target coordinate past +-1 std would be clipped to the end bin.
            '--policy.normalization_mapping={"VISUAL":"IDENTITY","STATE":"MIN_MAX","ACTION":"MEAN_STD"}']


def policy_flags(policy_type: str, directory: Path, dataset_root: Path, text: str, quick: bool,
                 horizon: int, width: int | None = None, depth: int | None = None) -> tuple[list[str], dict[str, str]]:
    """The `--policy.*` flags (and environment variables) of a small random VLM for `policy_type`; `width` and
    `depth` (π0-FAST's Gemma only) override its size."""
    directory.mkdir(parents=True, exist_ok=True)
    if (width or depth) and policy_type != "pi0fast":
        raise SystemExit(f"--vlm-width/--vlm-depth are for pi0fast's small VLM, not {policy_type}")
    if policy_type == "smolvla":
        return smolvla_flags(directory, text, quick), {}
    if policy_type in ("pi0", "pi05"):
        return pi0_flags(directory, text, quick)
    if policy_type == "pi0fast":
        return pi0fast_flags(directory, dataset_root, text, quick, horizon, width, depth), {}
    raise SystemExit(f"--small-vlm: no small VLM for --policy.type={policy_type}; use smolvla, pi0, pi05 or pi0fast")
