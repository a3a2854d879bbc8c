"""Deploy test helpers (a uniquely named module: `conftest` is ambiguous when test folders run together)."""

from __future__ import annotations

from pathlib import Path

from apprentice.contract import load_contract
from apprentice.resources import config_path


def write_tiny_act(directory: Path, contract_name: str = "sim_reach", **overrides: object) -> Path:
    """An untrained ACT (random init, real layout on disk) whose features match the contract."""
    import numpy as np

    from apprentice.policies import (
        features_from_dataset,
        make_config,
        make_policy,
        save_policy,
        stats_to_tensors,
    )

    contract = load_contract(config_path("contracts", f"{contract_name}.yaml"))
    inputs, outputs = features_from_dataset(contract.features)
    fields = dict(
        chunk_size=10,
        n_action_steps=5,
        dim_model=64,
        n_heads=4,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=8,
    )
    fields.update(overrides)
    config = make_config("act", input_features=inputs, output_features=outputs, **fields)
    stats = {}
    for key, ft in {**inputs, **outputs}.items():
        shape = (3, 1, 1) if ft.type == "VISUAL" else ft.shape
        stats[key] = {
            "mean": np.zeros(shape),
            "std": np.ones(shape),
            "min": -np.ones(shape),
            "max": np.ones(shape),
        }
    policy = make_policy(config, stats_to_tensors(stats))
    return save_policy(policy, directory / "pretrained_model")
