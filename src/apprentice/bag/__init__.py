"""rosbag2 bags (MCAP and sqlite3): reading, crash-safe MCAP writing, time alignment, conversion."""

from apprentice.bag.errors import BagError
from apprentice.bag.sampler import LatestSampler

__all__ = ["BagError", "LatestSampler"]
