"""The standard simulation benchmarks through their real PyPI packages, behind the dataset-key interface.

One module per package (aloha: gym-aloha, pusht: gym-pusht, hil: gym-hil, xarm: gym-xarm, metaworld,
libero: hf-libero). Each wraps the package's own env in a `BenchmarkEnv` whose observations carry the
feature keys lerobot's env wrappers produce, so a dataset recorded here trains in lerobot and back.
"""

from apprentice.sim.benchmarks.base import BenchmarkEnv, import_benchmark

__all__ = ["BenchmarkEnv", "import_benchmark"]
