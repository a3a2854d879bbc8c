"""Online RL plumbing in plain Python: the replay buffer and episode collection (TD-MPC's online loop;
SAC / HIL-SERL reuse them), and HIL-SERL's two processes — `learner` (replay buffer, updates, checkpoints,
weights out) and `actor` / `stream_actor` (env or ROS robot, transitions out) over `transport` (gRPC) —
plus `robot_env`, a real arm as a gymnasium-style env. Only the replay/collect names import here: the
rest loads on use, so `import apprentice.rl` needs no grpcio."""

from apprentice.rl.collect import Episode, collect_episode, collect_episodes
from apprentice.rl.replay import TRANSITION_KEYS, ReplayBuffer, ReplayError

__all__ = ["TRANSITION_KEYS", "Episode", "ReplayBuffer", "ReplayError", "collect_episode", "collect_episodes"]
