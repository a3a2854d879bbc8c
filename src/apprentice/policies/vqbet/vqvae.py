"""The action tokenizer: an MLP encoder, a 2-layer residual vector quantizer with EMA codebooks, an
MLP decoder (VQ-BeT paper, section 3.2). Module and buffer names follow LeRobot's `vqbet_utils.py`
(itself after lucidrains' vector-quantize-pytorch), so checkpoints load key for key; only the paths
VQ-BeT uses are here (Euclidean codebook, EMA update, no k-means init, no dead-code expiry).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

N_QUANTIZERS = 2  # LeRobot fixes the residual depth at 2: a primary and a secondary code


def mlp(in_dim: int, dims: list[int]) -> nn.Sequential:
    """Linear -> ReLU -> ... -> Linear (no activation after the last), indexed like LeRobot's MLP."""
    layers: list[nn.Module] = []
    for dim in dims[:-1]:
        layers += [nn.Linear(in_dim, dim), nn.ReLU()]
        in_dim = dim
    layers.append(nn.Linear(in_dim, dims[-1]))
    return nn.Sequential(*layers)


def _all_reduce(t: Tensor) -> None:
    # Codebooks stay identical across DDP ranks: cluster counts and sums are added over all ranks.
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)


class EuclideanCodebook(nn.Module):
    """`codebook_size` vectors of `dim`, updated as exponential moving averages of the inputs they quantize."""

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.8, eps: float = 1e-5) -> None:
        super().__init__()
        self.decay, self.eps, self.codebook_size = decay, eps, codebook_size
        embed = torch.empty(1, codebook_size, dim)
        nn.init.kaiming_uniform_(embed)
        self.register_buffer("initted", torch.ones(1))  # kept for the key layout; k-means init is unused
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("embed", embed)

    def forward(self, x: Tensor, freeze: bool) -> tuple[Tensor, Tensor]:
        """x (B, n, D) -> quantized (B, n, D), code index (B, n)."""
        with torch.autocast(x.device.type, enabled=False):  # distances and EMA in fp32 under bf16 autocast
            return self._quantize(x, freeze)

    def _quantize(self, x: Tensor, freeze: bool) -> tuple[Tensor, Tensor]:
        b, n, d = x.shape
        flat = x.float().reshape(1, b * n, d)  # (1, Bn, D): one codebook "head"
        embed = self.embed.detach()
        # LeRobot's distance (not torch.cdist), so the nearest code is picked identically.
        x2 = (flat**2).sum(-1)
        y2 = (embed**2).sum(-1)
        xy = torch.einsum("b i d, b j d -> b i j", flat, embed) * -2
        dist_ = -(x2.unsqueeze(-1) + y2.unsqueeze(-2) + xy).sqrt()
        index = dist_.argmax(dim=-1)  # (1, Bn)
        onehot = F.one_hot(index, self.codebook_size).type(dist_.dtype)
        if self.training:
            quantize = torch.einsum("h n c, h c d -> h n d", onehot, embed)
        else:
            quantize = embed[0][index]
        if self.training and not freeze:
            self._ema_update(flat.detach(), onehot)
        return quantize.reshape(b, n, d), index.reshape(b, n)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, onehot: Tensor) -> None:
        counts = onehot.sum(dim=1)
        _all_reduce(counts)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        embed_sum = torch.einsum("h n d, h n c -> h c d", flat, onehot)
        _all_reduce(embed_sum)
        self.embed_avg.lerp_(embed_sum, 1 - self.decay)
        # Laplace smoothing keeps unused codes from dividing by zero.
        total = self.cluster_size.sum(dim=-1, keepdim=True)
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(-1))


class VectorQuantize(nn.Module):
    """One quantizer layer: nearest code, straight-through gradient, commitment loss."""

    def __init__(self, dim: int, codebook_size: int, commitment_weight: float = 1.0) -> None:
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size)
        self.commitment_weight = commitment_weight

    def forward(self, x: Tensor, freeze: bool) -> tuple[Tensor, Tensor, Tensor]:
        quantize, index = self._codebook(x, freeze)
        loss = torch.zeros(1, device=x.device)
        if self.training:
            commit = quantize.detach()
            quantize = x + (quantize - x).detach()  # straight-through: gradients flow to the encoder
            loss = loss + F.mse_loss(commit, x) * self.commitment_weight
        return quantize, index, loss


class ResidualVQ(nn.Module):
    """Quantize, subtract, quantize the residual again: codes (primary, secondary) per vector."""

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([VectorQuantize(dim, codebook_size) for _ in range(num_quantizers)])
        self.register_buffer("freeze_codebook", torch.tensor(False))

    def codebook_vectors(self, indices: Tensor) -> Tensor:
        """indices (B, num_quantizers) -> the chosen code vectors (num_quantizers, B, D)."""
        return torch.stack([layer._codebook.embed[0][indices[:, i]] for i, layer in enumerate(self.layers)])

    def forward(self, x: Tensor, freeze: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, n, D) -> quantized (B, n, D), codes (B, n, num_quantizers), losses (1, num_quantizers).
        `freeze` stands for the freeze_codebook buffer when the caller knows it (reading it syncs a GPU)."""
        freeze = bool(self.freeze_codebook) if freeze is None else freeze
        out: Tensor | float = 0.0
        residual = x
        indices, losses = [], []
        for layer in self.layers:
            quantized, index, loss = layer(residual, freeze)
            residual = residual - quantized.detach()
            out = out + quantized
            indices.append(index)
            losses.append(loss)
        return out, torch.stack(indices, dim=-1), torch.stack(losses, dim=-1)


class VqVae(nn.Module):
    """Action chunk (B, action_chunk_size, A) <-> latent (B, vqvae_embedding_dim) <-> 2 codes.

    `discretized` (a saved buffer) is the training phase: False while the VQ-VAE learns, True once it
    is frozen and the GPT learns. `optimized_steps` (also saved, so a resumed run switches at the same
    step) counts VQ-VAE updates; a LeRobot checkpoint, which lacks it, gets it from `discretized`.
    """

    def __init__(self, action_dim: int, chunk: int, n_embed: int, embed_dim: int, hidden: int, steps: int):
        super().__init__()
        self.action_dim, self.chunk, self.n_training_steps = action_dim, chunk, steps
        self.register_buffer("discretized", torch.tensor(False))
        self.register_buffer("optimized_steps", torch.tensor(0, dtype=torch.int64))
        self.vq_layer = ResidualVQ(embed_dim, N_QUANTIZERS, n_embed)
        self.encoder = mlp(action_dim * chunk, [hidden, hidden, embed_dim])
        self.decoder = mlp(embed_dim, [hidden, hidden, action_dim * chunk])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "optimized_steps"
        if key not in state_dict and prefix + "discretized" in state_dict:
            done = bool(state_dict[prefix + "discretized"])
            state_dict[key] = torch.tensor(self.n_training_steps if done else 0, dtype=torch.int64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def embeddings_from_codes(self, codes: Tensor) -> Tensor:
        """codes (B, 2) -> the latent their code vectors sum to (B, D)."""
        return self.vq_layer.codebook_vectors(codes).sum(dim=0)

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(latent).reshape(latent.shape[0], self.chunk, self.action_dim)

    def _quantize(self, actions: Tensor, frozen: bool | None) -> tuple[Tensor, Tensor, Tensor]:
        latent = self.encoder(actions.flatten(1))  # (B, T*A) -> (B, D)
        quantized, codes, losses = self.vq_layer(latent.unsqueeze(1), frozen)
        return quantized.squeeze(1), codes.squeeze(1), losses.sum()

    @torch.no_grad()
    def codes(self, actions: Tensor, frozen: bool | None = None) -> Tensor:
        """Ground-truth codes (B, 2) of action chunks (B, T, A), the GPT's classification targets."""
        return self._quantize(actions, frozen)[1]

    def reconstruction_loss(self, actions: Tensor, frozen: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Phase 1 loss (L1 reconstruction + 5 x commitment), the L1 error, and the codes used."""
        quantized, codes, commit = self._quantize(actions, frozen)
        recon = (actions.flatten(1) - self.decoder(quantized)).abs().mean()
        return recon + commit * 5, recon.detach(), codes
