#!/usr/bin/env bash
# One cell of the GitHub Actions matrix: install with the README's command, build the
# kernel when it is a flavour not in the cache, run the suites on it, and leave
# JUnit, console logs and the tables in OUT (the job summary gets the table).
#
#   ci/gha/cell.sh KERNEL ARCH OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
kernel=$1 arch=$2 out=$3

bash ci/run.sh setup
export PATH="$PWD/.venv/bin:$PATH"
case "$kernel" in
  *-*) bash ci/run.sh setup-build
       bpfvm kernels build "${kernel%%-*}" --flavour "${kernel#*-}" --arch "$arch" ;;
esac

mkdir -p "$out"
rc=0
pytest suites --kernel "$kernel" --arch "$arch" -n 2 -v \
  --junitxml "$out/junit.xml" --bpfvm-logdir "$out/console" \
  --compat-report "$out/compat" --compat-reasons --verifier-report "$out/verifier" || rc=$?

if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/compat.md" ]; then
  { echo "### $kernel $arch"; echo; cat "$out/compat.md"; } >> "$GITHUB_STEP_SUMMARY"
fi
exit $rc
