#!/usr/bin/env bash
# One-time set-up of a machine for nextframe: Debian's extractors for the UCF50 source
# (libarchive-tools' bsdtar and unar) and the locked Python environment: requirements.lock
# pins every distribution, transitively, with its hashes, so every machine gets the same
# bytes (and the committed results reproduce). Safe to rerun: pip skips what is in place.
#
#   bash scripts/setup.sh          # CPU: torch 2.13.0+cpu, as the lock says
#   bash scripts/setup.sh --cuda   # GPU box: torch 2.13.0's CUDA build from PyPI instead
#
# Upgrading the lock after changing pyproject.toml's ranges: bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bsdtar >/dev/null 2>&1 || ! command -v unar >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends libarchive-tools unar >/dev/null
  else
    echo "warning: install bsdtar (libarchive) or unar yourself; the ucf50 source needs one" >&2
  fi
fi

lock=requirements.lock
if [ "${1:-}" = "--cuda" ]; then
  # The lock's torch is the CPU build; take the CUDA build of the same version instead
  # and install everything else exactly as locked.
  python3 -m pip install --quiet "torch==2.13.0"
  lock=$(mktemp --suffix=.txt)
  trap 'rm -f "$lock"' EXIT
  awk '/^torch==/ {skip = 1; next} /^[^ #]/ {skip = 0} !skip' requirements.lock >"$lock"
elif [ -n "${1:-}" ]; then
  echo "usage: bash scripts/setup.sh [--cuda]" >&2
  exit 2
fi
python3 -m pip install --quiet --require-hashes -r "$lock"
python3 -m pip install --quiet --no-deps -e .
