#!/usr/bin/env bash
# Run a command inside the apprentice environment (.venv + colcon install + loopback discovery defaults):
#   ./scripts/run.sh apprentice demo
set -eo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$@"
