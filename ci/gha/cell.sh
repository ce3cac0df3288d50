#!/usr/bin/env bash
# action.yml, step "run": fetch (or build) the kernels, run pytest in their VMs, leave
# JUnit, console logs and the tables in the out directory and the table in the job summary.
#
# In: INPUT_KERNELS, INPUT_ARCHES, INPUT_PATHS, INPUT_PYTEST_ARGS; GITHUB_ACTION_PATH,
# GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP, BPFVM_CACHE (from setup.sh).
# Out (GITHUB_OUTPUT): junit, compat, console, accel, exit-code, cache-key. Exits 0 so
# the cache and the artifact are kept; verdict.sh fails the job afterwards.
set -uo pipefail
out=$RUNNER_TEMP/bpfvm-out
mkdir -p "$out"

# Ask the mirror for each Debian kernel (and each built flavour's source) every run, so
# the cache follows Debian's updates; pytest itself would use what is cached.
prepare() {
  local arch kernel host
  host=$(python3 -c 'from bpfvm.arches import host_arch; print(host_arch())') || return
  for arch in ${INPUT_ARCHES//,/ }; do
    [ "$arch" = "$host" ] || bpfvm rootfs build --arch "$arch" || return
    for kernel in ${INPUT_KERNELS//,/ }; do
      case "$kernel" in
        host|/*|./*) ;;
        *-*) bpfvm kernels build "${kernel%%-*}" --flavour "${kernel#*-}" --arch "$arch" || return ;;
        *) bpfvm kernels fetch "$kernel" --arch "$arch" || return ;;
      esac
    done
  done
}

rc=0
if prepare; then
  # shellcheck disable=SC2086  # paths and pytest-args are lists of words
  pytest $INPUT_PATHS --kernel "$INPUT_KERNELS" --arch "$INPUT_ARCHES" $INPUT_PYTEST_ARGS \
    --junitxml "$out/junit.xml" --bpfvm-logdir "$out/console" \
    --compat-report "$out/compat" --compat-reasons --verifier-report "$out/verifier" || rc=$?
else
  rc=$?
  echo "::error::bpfvm: could not fetch or build the kernels $INPUT_KERNELS for $INPUT_ARCHES (exit $rc): see the log above"
fi

python3 "$GITHUB_ACTION_PATH/ci/gha/summary.py" "$out" "$INPUT_KERNELS" "$INPUT_ARCHES" "$rc" \
  >> "$GITHUB_STEP_SUMMARY"
{
  echo "junit=$out/junit.xml"
  echo "compat=$out/compat.md"
  echo "console=$out/console"
  echo "accel=$(python3 "$GITHUB_ACTION_PATH/ci/gha/summary.py" --accel "$out")"
  echo "exit-code=$rc"
  echo "cache-key=$(python3 "$GITHUB_ACTION_PATH/ci/gha/cache_key.py" "$BPFVM_CACHE")"
} >> "$GITHUB_OUTPUT"
