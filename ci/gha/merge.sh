#!/usr/bin/env bash
# merge/action.yml: one compatibility table from every cell's compat.json under CELLS,
# into the job summary and $RUNNER_TEMP/bpfvm-compatibility.{md,json}. Needs only
# Python: bpfvm is installed without its dependencies (the report code is stdlib).
#
# In: CELLS, GITHUB_ACTION_PATH (merge/), GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP.
# Out (GITHUB_OUTPUT): table.
set -euo pipefail
shopt -s nullglob
reports=("$CELLS"/*/compat.json)
if [ ${#reports[@]} -eq 0 ]; then
  echo "::error::bpfvm: no cell left a compatibility table in $CELLS"
  exit 1
fi
venv=$RUNNER_TEMP/bpfvm-merge-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$GITHUB_ACTION_PATH/.."
base=$RUNNER_TEMP/bpfvm-compatibility
{ echo "## Compatibility: ${#reports[@]} cells"; echo
  "$venv/bin/bpfvm" report merge "${reports[@]}" -o "$base"; } >> "$GITHUB_STEP_SUMMARY"
echo "table=$base" >> "$GITHUB_OUTPUT"
