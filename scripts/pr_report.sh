#!/usr/bin/env bash
# A pull request's pipeline report in Markdown (what docs/ci/cml.yaml posts with CML):
# params and metrics against the base branch, and the plots of both side by side.
#
#   bash scripts/pr_report.sh <base rev> <report dir>     # e.g. origin/main report/
#
# Writes <report dir>/report.md and <report dir>/plots/ (dvc plots diff's HTML and the
# contact-sheet images it references). Needs the outputs of both revisions in the DVC
# cache or remote (dvc pull) for the plots that are not committed to git.
set -euo pipefail
base="${1:?usage: bash scripts/pr_report.sh <base rev> <report dir>}"
out="${2:?usage: bash scripts/pr_report.sh <base rev> <report dir>}"
mkdir -p "$out"
{
  echo "## Params and metrics: this branch against $base"
  echo
  dvc exp diff "$base" --md
  echo
  echo "## Plots"
  echo
  echo "Interactive: plots/index.html in the run's artifacts (dvc plots diff $base)."
} > "$out/report.md"
dvc plots diff "$base" --out "$out/plots" > /dev/null
# the image plots (contact sheets of both revisions) that dvc copied beside its HTML
find "$out/plots" -name '*.png' | sort | while read -r image; do
  echo "![${image#"$out/plots/"}](${image#"$out/"})" >> "$out/report.md"
done
echo "wrote $out/report.md"
