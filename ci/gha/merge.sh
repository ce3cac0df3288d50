#!/usr/bin/env bash
# The final job of the matrix: one compatibility table from every cell's, into the
# job summary and BASE.md / BASE.json.
#
#   ci/gha/merge.sh CELLS_DIR BASE
set -euo pipefail
cd "$(dirname "$0")/../.."
cells=$1 base=$2

shopt -s nullglob
reports=("$cells"/*/compat.json)
if [ ${#reports[@]} -eq 0 ]; then
  echo "no cell left a compatibility table in $cells" >&2
  exit 1
fi
bash ci/run.sh setup
{ echo "## Compatibility: ${#reports[@]} cells"; echo;
  .venv/bin/bpfvm report merge "${reports[@]}" -o "$base"; } | tee -a "${GITHUB_STEP_SUMMARY:-/dev/null}"
