#!/usr/bin/env bash
# bpfvm's one entry point for people and CI: install what is missing, then test.
#
#   ci/run.sh smoke   the smoke suite on the default kernel (pyproject.toml)
#   ci/run.sh test    the harness's own tests, then the VM suites on 5.10, 6.1, 6.12, latest
#   ci/run.sh setup   only install
#
# Installing is idempotent and quiet when already done: Debian packages with
# apt-get (only those missing), Python packages into .venv (only when
# pyproject.toml changed). Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 busybox-static kmod file iproute2   # booting guests with virtme-ng
  clang llvm bpftool libbpf1 libbpf-dev               # building and inspecting BPF
  python3-venv debian-archive-keyring                 # the virtualenv; fetching kernels
)
VENV=.venv

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_venv() {
  local stamp="$VENV/.bpfvm-installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
  echo "installing Python packages into $VENV"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
}

install_apt
install_venv
export PATH="$PWD/$VENV/bin:$PATH"

case "${1:-}" in
  setup) ;;
  smoke) shift; exec pytest suites/test_smoke.py -v "$@" ;;
  test)
    shift
    rc=0
    pytest tests -v "$@" || rc=$?
    pytest suites --kernel 5.10,6.1,6.12,latest -n 2 -v "$@" || rc=$?
    exit $rc ;;
  *) echo "usage: ci/run.sh smoke|test|setup [pytest args...]" >&2; exit 2 ;;
esac
