"""Online RL plumbing in plain Python: the replay buffer and episode collection (TD-MPC's online loop;
SAC / HIL-SERL reuse them)."""

from apprentice.rl.collect import Episode, collect_episode, collect_episodes
from apprentice.rl.replay import TRANSITION_KEYS, ReplayBuffer, ReplayError

__all__ = ["TRANSITION_KEYS", "Episode", "ReplayBuffer", "ReplayError", "collect_episode", "collect_episodes"]
