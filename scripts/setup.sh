#!/usr/bin/env bash
# One-time set-up of a machine for nextframe: the RAR/ZIP/TAR extractor the UCF50 source
# needs (Debian's libarchive-tools and unar) and the project itself with its pinned torch.
# Safe to rerun: it installs only what is missing.
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

# torch is pinned in pyproject.toml (2.13.0); pip takes a local CPU wheel where one is offered
python3 -m pip install --quiet -e ".[dev]"
