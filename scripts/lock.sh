#!/usr/bin/env bash
# Re-resolve requirements.lock from pyproject.toml: every distribution the project and its
# dev tools need, pinned transitively with hashes.
#
#   bash scripts/lock.sh             # after editing pyproject.toml: add or drop what changed,
#                                    # keep every other pin as it is
#   bash scripts/lock.sh --upgrade   # also take the newest versions the ranges allow
#
# Then bash scripts/setup.sh, dvc repro, and commit the lock with the results it gives.
set -euo pipefail
cd "$(dirname "$0")/.."
upgrade=()
if [ "${1:-}" = "--upgrade" ]; then
  upgrade=(--upgrade)
elif [ -n "${1:-}" ]; then
  echo "usage: bash scripts/lock.sh [--upgrade]" >&2
  exit 2
fi
python3 -m piptools compile --quiet "${upgrade[@]}" --extra dev --generate-hashes \
  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock pyproject.toml
