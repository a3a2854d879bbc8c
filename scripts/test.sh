#!/usr/bin/env bash
# Run the test suite (ruff + pytest) in the environment made by scripts/setup.sh.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/dataset -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u
# Every ROS 2 participant the tests start stays on loopback; tests/conftest.py picks the domain per run.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "==> ruff check src tests benchmarks"
ruff check src tests benchmarks
echo "==> pytest"
python -m pytest "${@:-tests}" -q -p no:cacheprovider --durations=15
