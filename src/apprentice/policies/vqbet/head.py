"""VQ-BeT's action head: from each action-query feature of the GPT, logits over the primary and
secondary codes (sampled at `bet_softmax_temperature`), a continuous offset for every code, and the
action chunk = decoded code vectors + the sampled codes' offsets (VQ-BeT paper, section 3.3).
Names follow LeRobot's `VQBeTHead` (`vqvae_model`, `map_to_cbet_preds_*`)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.vqbet.configuration_vqbet import VQBeTConfig
from apprentice.policies.vqbet.vqvae import N_QUANTIZERS, VqVae, mlp

log = logging.getLogger(__name__)


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Cross-entropy down-weighted on easy examples by (1 - p)^gamma (Lin et al. 2017); mean over rows."""
    logpt = F.log_softmax(logits, dim=-1).gather(-1, target.view(-1, 1)).view(-1)
    return (-1 * (1 - logpt.exp()) ** gamma * logpt).mean()


class VQBeTHead(nn.Module):
    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        self.config = config
        action_dim = config.action_feature.shape[0]
        self.vqvae_model = VqVae(
            action_dim,
            config.action_chunk_size,
            config.vqvae_n_embed,
            config.vqvae_embedding_dim,
            config.vqvae_enc_hidden_dim,
            config.n_vqvae_training_steps,
        )
        n_embed, d = config.vqvae_n_embed, config.gpt_output_dim
        if config.sequentially_select:
            # The secondary code is chosen knowing the primary one (one-hot appended to the feature).
            self.map_to_cbet_preds_primary_bin = mlp(d, [n_embed])
            self.map_to_cbet_preds_secondary_bin = mlp(d + n_embed, [n_embed])
        else:
            self.map_to_cbet_preds_bin = mlp(d, [N_QUANTIZERS * n_embed])
        self.map_to_cbet_preds_offset = mlp(d, [N_QUANTIZERS * n_embed * config.action_chunk_size * action_dim])
        self._phase: bool | None = None  # Python mirror of vqvae_model.discretized (no GPU sync per step)
        self._steps: int | None = None  # ... and of vqvae_model.optimized_steps
        # Graph-safe mode (VQBeTPolicy.set_graph_safe): a step touches only device tensors, because a
        # replayed CUDA graph runs no Python; the trainer advances the mirror with count_step() instead.
        self.graph_safe = False

    # ------------------------------------------------------------------ phase 1: train the VQ-VAE
    @property
    def discretized(self) -> bool:
        if self._phase is None:
            self._phase = bool(self.vqvae_model.discretized)
            self._steps = int(self.vqvae_model.optimized_steps)
        return self._phase

    def _load_from_state_dict(self, *args, **kwargs):
        self._phase = self._steps = None  # loading replaces the phase buffers: re-read them
        super()._load_from_state_dict(*args, **kwargs)

    def discretize(self, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One VQ-VAE step on every `action_chunk_size` window of actions (B, L, A); the VQ-VAE freezes
        (and the GPT phase starts) once it has taken `n_vqvae_training_steps` steps."""
        w, n_embed = self.config.action_chunk_size, self.config.vqvae_n_embed
        windows = torch.cat([actions[:, j : j + w] for j in range(actions.shape[1] + 1 - w)], dim=0)
        # LeRobot freezes the codebooks exactly when it marks the VQ-VAE discretized: phase 1 = unfrozen.
        loss, recon, codes = self.vqvae_model.reconstruction_loss(windows, frozen=self.discretized)
        # The phase buffers advance on the device (a captured graph replays these ops every step) ...
        vq = self.vqvae_model
        vq.optimized_steps.add_(1)
        done = vq.optimized_steps >= self.config.n_vqvae_training_steps
        vq.discretized.copy_(done)
        vq.vq_layer.freeze_codebook.copy_(done)
        if not self.graph_safe:  # ... and their host mirror here, or in count_step() under a graph
            self.count_step()
        # Code usage as counts of one-hot columns, not torch.unique (whose output size syncs the GPU).
        used = F.one_hot(codes, n_embed).amax(dim=0)  # (G, C): 1 where a layer used the code
        pairs = F.one_hot(codes[:, 0] * n_embed + codes[:, 1], n_embed * n_embed).amax(dim=0)
        info = {
            "n_different_codes": used.sum().float(),
            "n_different_combinations": pairs.sum().float(),
            "recon_l1_error": recon,
        }
        return loss, info

    def count_step(self) -> None:
        """Count one VQ-VAE step on the host mirror of the phase; the switch to the GPT phase happens here."""
        if self.discretized:  # also reads the saved step count the first time
            return
        self._steps = int(self._steps or 0) + 1
        if self._steps >= self.config.n_vqvae_training_steps:
            self._phase = True
            log.info("vqbet: VQ-VAE trained for %d steps; frozen, GPT phase starts", self._steps)

    # ------------------------------------------------------------------ phase 2: predict actions
    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """GPT features (N, T, gpt_output_dim) -> code logits, sampled codes and action chunks (N, T, W*A)."""
        n, t, _ = x.shape
        cfg, n_embed = self.config, self.config.vqvae_n_embed
        x = x.reshape(n * t, -1)
        offsets = self.map_to_cbet_preds_offset(x).view(n * t, N_QUANTIZERS, n_embed, -1)  # (NT, G, C, W*A)
        temp = cfg.bet_softmax_temperature
        if cfg.sequentially_select:
            primary_logits = self.map_to_cbet_preds_primary_bin(x)
            primary = torch.multinomial(torch.softmax(primary_logits / temp, dim=-1), num_samples=1).view(-1)
            onehot = F.one_hot(primary, num_classes=n_embed).to(x.dtype)
            secondary_logits = self.map_to_cbet_preds_secondary_bin(torch.cat((x, onehot), dim=1))
            secondary = torch.multinomial(torch.softmax(secondary_logits / temp, dim=-1), num_samples=1).view(-1)
            codes = torch.stack((primary, secondary), dim=1)  # (NT, G)
            logits = torch.stack([primary_logits, secondary_logits], dim=1)  # (NT, G, C)
        else:
            logits = self.map_to_cbet_preds_bin(x).view(n * t, N_QUANTIZERS, n_embed)
            probs = torch.softmax(logits / temp, dim=-1)
            codes = torch.multinomial(probs.view(-1, n_embed), num_samples=1).view(n * t, N_QUANTIZERS)
        # The sampled codes' offsets, summed over G. A gather (backward: scatter-add) rather than advanced
        # indexing: the same values, fewer kernels, and safe inside a CUDA graph.
        picked = offsets.gather(2, codes[:, :, None, None].expand(-1, -1, 1, offsets.shape[-1]))
        offset = picked.squeeze(2).sum(dim=1)
        with torch.no_grad():  # the frozen VQ-VAE decodes the codes; only the offset head learns here
            decoded = self.vqvae_model.decode(self.vqvae_model.embeddings_from_codes(codes))  # (NT, W, A)
        predicted = decoded + offset.view(decoded.shape)
        return {
            "cbet_logits": logits,
            "predicted_action": predicted.reshape(n, t, -1),
            "sampled_centers": codes,
            "decoded_action": decoded,
        }

    def loss(self, pred: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Focal losses of both codes against the frozen VQ-VAE's codes of `target` (N, T, W, A), plus
        the weighted L1 of the predicted actions."""
        cfg = self.config
        target = target.flatten(0, 1)  # (NT, W, A)
        predicted = pred["predicted_action"].reshape(target.shape)
        true_codes = self.vqvae_model.codes(target, frozen=self.discretized)  # (NT, G)
        offset_loss = F.l1_loss(target, predicted)
        logits, sampled = pred["cbet_logits"], pred["sampled_centers"]
        code_loss = (
            focal_loss(logits[:, 0, :], true_codes[:, 0]) * cfg.primary_code_loss_weight
            + focal_loss(logits[:, 1, :], true_codes[:, 1]) * cfg.secondary_code_loss_weight
        )
        loss = code_loss + cfg.offset_loss_weight * offset_loss
        error = (target - predicted).abs()
        info = {
            "classification_loss": code_loss.detach(),
            "offset_loss": offset_loss.detach(),
            "equal_primary_code_rate": (true_codes[:, 0] == sampled[:, 0]).float().mean(),
            "equal_secondary_code_rate": (true_codes[:, 1] == sampled[:, 1]).float().mean(),
            "vq_action_error": (target - pred["decoded_action"]).abs().mean(),
            "offset_action_error": error.mean().detach(),
            "action_error_max": error.max().detach(),
            "action_mse_error": ((target - predicted) ** 2).mean().detach(),
        }
        return loss, info
