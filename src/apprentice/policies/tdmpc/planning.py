"""TD-MPC's planner: MPPI with the cross-entropy method over `horizon`-step action sequences, each scored
by rolling it out in the learned latent dynamics (FOWM eqn 4: discounted rewards plus a terminal Q, each
minus λ times the Q ensemble's disagreement).

Random numbers are drawn in LeRobot's order (π noise, then per CEM iteration the gaussian samples, the
terminal π noise and the two Q members, finally the elite pick), so the same torch seed gives the same
plan as LeRobot's TDMPCPolicy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from apprentice.policies.tdmpc.configuration_tdmpc import TDMPCConfig
from apprentice.policies.tdmpc.networks import TDMPCTOLD


@torch.no_grad()
def estimate_value(
    model: TDMPCTOLD, config: TDMPCConfig, z: Tensor, actions: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """z: (N, B, latent), actions: (horizon, N, B, action) -> value of each trajectory (N, B)."""
    lam = config.uncertainty_regularizer_coeff
    value, discount = torch.zeros(z.shape[:-1], device=z.device), 1.0
    for a in actions:
        penalty = lam * model.Qs(z, a).std(0) if lam > 0 else 0.0  # epistemic uncertainty of this step
        z, reward = model.latent_dynamics_and_reward(z, a)
        value = value + discount * (reward - penalty)
        discount *= config.discount
    # Terminal value: Q of π's (slightly noisy) next action, the min of two random ensemble members.
    terminal = model.Qs(z, model.pi(z, config.min_std, generator))  # (ensemble, N, B)
    if config.q_ensemble_size > 2:
        device = generator.device if generator is not None else "cpu"
        members = torch.randint(0, config.q_ensemble_size, (2,), generator=generator, device=device)
        value = value + discount * terminal[members.to(terminal.device)].min(0).values
    else:
        value = value + discount * terminal.min(0).values
    if lam > 0:
        value = value - discount * lam * terminal.std(0)
    return value


@torch.no_grad()
def plan(
    model: TDMPCTOLD,
    config: TDMPCConfig,
    z: Tensor,
    prev_mean: Tensor | None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """z: (B, latent) -> (planned actions (horizon, B, action) in [-1, 1] before the caller's clamp,
    the final CEM mean to warm-start the next plan)."""
    horizon, n_pi, n_gauss = config.horizon, config.n_pi_samples, config.n_gaussian_samples
    batch, action_dim = z.shape[0], config.action_feature.shape[0]
    device = z.device

    # N_π trajectories from the policy prior, rolled out in latent space.
    pi_actions = torch.empty(horizon, n_pi, batch, action_dim, device=device)
    if n_pi > 0:
        z_pi = z.unsqueeze(0).repeat(n_pi, 1, 1)  # a real copy: the same matmul kernels as LeRobot
        for t in range(horizon):
            pi_actions[t] = model.pi(z_pi, config.min_std, generator)
            z_pi = model.latent_dynamics(z_pi, pi_actions[t])

    z = z.unsqueeze(0).repeat(n_gauss + n_pi, 1, 1)
    mean = torch.zeros(horizon, batch, action_dim, device=device)
    if prev_mean is not None:  # warm start: last plan shifted by one step
        mean[:-1] = prev_mean[1:]
    std = torch.full_like(mean, config.max_std)

    for _ in range(config.cem_iterations):
        noise = torch.randn(horizon, n_gauss, batch, action_dim, generator=generator, device=device)
        gaussian = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
        actions = torch.cat([gaussian, pi_actions], dim=1)  # (horizon, N, B, action)
        value = estimate_value(model, config, z, actions, generator).nan_to_num_(0)  # (N, B)
        elite_idx = value.topk(config.n_elites, dim=0).indices  # (n_elites, B)
        elite_value = value.gather(0, elite_idx)
        elite_actions = actions.gather(1, elite_idx[None, :, :, None].expand(horizon, -1, -1, action_dim))
        # Softmax weights over the elites' values: μ = Σ s·Γ, σ² = Σ s·(Γ − μ)².
        score = torch.exp(config.elite_weighting_temperature * (elite_value - elite_value.max(0).values))
        score = score / score.sum(0, keepdim=True)
        weights = score[None, :, :, None]
        elite_mean = (weights * elite_actions).sum(1)
        elite_std = ((weights * (elite_actions - elite_mean.unsqueeze(1)) ** 2).sum(1)).sqrt()
        mean = config.gaussian_mean_momentum * mean + (1 - config.gaussian_mean_momentum) * elite_mean
        std = elite_std.clamp(config.min_std, config.max_std)

    # One elite trajectory per batch element, drawn with the last iteration's softmax weights.
    pick = torch.multinomial(score.T, 1, generator=generator)[:, 0]  # (B,)
    chosen = elite_actions[:, pick, torch.arange(batch, device=device)]
    return chosen, mean
