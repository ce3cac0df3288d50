#!/usr/bin/env bash
# bpfvm's one entry point for people and CI: install what is missing, then test.
#
#   ci/run.sh smoke   the smoke suite on the default kernel (pyproject.toml)
#   ci/run.sh test    the harness's own tests, the VM suites on 5.10, 6.1, 6.12, latest, the
#                     offload and kprobe-override tests on 6.12-test, three of the 6.12
#                     source's annotated verifier_*.c files on 6.12, and the smoke, maps and
#                     xdp suites on Debian's 6.12 arm64 (the kernel and the arm64 root are
#                     built when not cached); the time of each stage at the end
#   ci/run.sh build   build the 6.12 test-flavour kernels (x86_64, arm64) and the arm64 root
#                     if not cached, then the tests and suites that need them (slow: see README)
#   ci/run.sh setup   only install
#   ci/run.sh setup-build   also install what building kernels needs
#
# Installing is idempotent and quiet when already done: the virtualenv .venv
# (python3-venv, then bpfvm and its Python packages, only when pyproject.toml
# changed), then `bpfvm setup`, the one list of Debian packages bpfvm needs.
# Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_venv() {
  local stamp="$VENV/.bpfvm-installed" want
  if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "installing Debian packages: python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
  echo "installing Python packages into $VENV"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
}

# stage NAME CMD...: run CMD (errexit does not reach inside: CMD must check its own
# steps), remembering how long it took and whether it failed.
STAGES=()
record() {  # NAME START RC
  STAGES+=("$(printf '%5dm%02ds  %s%s' $(((SECONDS - $2) / 60)) $(((SECONDS - $2) % 60)) \
    "$1" "$([ "$3" = 0 ] || echo "  (FAILED, exit $3)")")")
}
stage() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  record "$name" "$start" "$rc"
  return $rc
}
stage_times() {
  echo "== stages (wall time) =="
  printf '%s\n' "${STAGES[@]}"
}

start=$SECONDS
install_venv
export PATH="$PWD/$VENV/bin:$PATH"
case "${1:-}" in
  test|build|setup-build) bpfvm setup --quiet --build ;;
  *) bpfvm setup --quiet ;;
esac
record "install" "$start" 0

# The offload suite needs netdevsim and the override test CONFIG_BPF_KPROBE_OVERRIDE,
# which only the test flavour has; the build is a cache hit after the first (ccache too).
offload_suite() {
  bpfvm kernels build 6.12 --flavour test || return
  pytest suites -k "offload or override" --kernel 6.12-test -n 2 -v "$@"
}

# The kernel's own annotated verifier programs (6.12's source, fetched once into the
# cache) as test items on Debian's 6.12.
kernel_selftests() {
  local progs
  progs="$(bpfvm kernels source 6.12)/tools/testing/selftests/bpf/progs" || return
  local files=(bounds.c helper_value_access.c ref_tracking.c sock.c sock_addr.c xdp_direct_packet_access.c)
  pytest "${files[@]/#/$progs/verifier_}" --kernel 6.12 -p no:cacheprovider -q -rfs "$@"
}

# arm64 guests run on their own Debian root (built once, cached) under TCG here.
arm64_suites() {
  bpfvm rootfs build --arch arm64 || return
  pytest suites/test_smoke.py suites/test_maps.py suites/test_xdp.py \
    --kernel 6.12 --arch arm64 -n 2 -v "$@"
}

case "${1:-}" in
  setup) ;;
  setup-build) ;;
  smoke) shift; exec pytest suites/test_smoke.py -v "$@" ;;
  test)
    shift
    rc=0
    stage "bpfvm's own tests" pytest tests -n 2 -v "$@" || rc=$?
    stage "suites on 5.10, 6.1, 6.12, latest" \
      pytest suites --kernel 5.10,6.1,6.12,latest -n 2 -v "$@" || rc=$?
    stage "6.12-test: build (when not cached), offload and override" offload_suite "$@" || rc=$?
    stage "the 6.12 source's annotated verifier programs on 6.12" kernel_selftests "$@" || rc=$?
    stage "6.12 arm64: root (when not cached), smoke, maps, xdp" arm64_suites "$@" || rc=$?
    stage_times
    exit $rc ;;
  build)
    shift
    bpfvm kernels build 6.12 --flavour test
    bpfvm kernels build 6.12 --flavour test --arch arm64
    bpfvm rootfs build --arch arm64
    rc=0
    pytest tests -m build -v "$@" || rc=$?
    pytest suites -k "smoke or offload" --kernel 6.12,6.12-test --arch x86_64,arm64 -n 2 -v "$@" || rc=$?
    pytest suites -k "maps or xdp or traffic or tc or xsk" --kernel 6.12 --arch arm64 -n 2 -v "$@" || rc=$?
    exit $rc ;;
  *) echo "usage: ci/run.sh smoke|test|build|setup|setup-build [pytest args...]" >&2; exit 2 ;;
esac
