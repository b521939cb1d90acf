#!/usr/bin/env bash
# Re-resolve requirements.lock from pyproject.toml: every distribution the project and its
# dev tools need, pinned transitively with hashes. Run after changing a range in
# pyproject.toml (or to take upgrades within the ranges), then bash scripts/setup.sh,
# dvc repro, and commit the lock with the results it gives.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m piptools compile --quiet --upgrade --extra dev --generate-hashes --allow-unsafe \
  --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock pyproject.toml
