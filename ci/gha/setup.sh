#!/usr/bin/env bash
# action.yml, step "setup": check the job can run bpfvm, let it open /dev/kvm, install
# bpfvm (from the action's own checkout) into a virtualenv and the Debian packages it needs.
#
# In: INPUT_KERNELS, INPUT_ARCHES, INPUT_PYTHON_VERSION, INPUT_PIP_INSTALL, INPUT_MIRROR,
# INPUT_ARTIFACT_NAME; GITHUB_ACTION_PATH, GITHUB_ENV, GITHUB_PATH, GITHUB_OUTPUT, RUNNER_TEMP.
# Out (GITHUB_OUTPUT): cache-dir, cache-prefix, week, out, artifact.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
fail() { echo "::error::bpfvm: $*" >&2; exit 1; }

# shellcheck source=/dev/null
. /etc/os-release
if [ "${ID:-}" != debian ] && [ -z "${INPUT_MIRROR:-}" ]; then
  fail "this job runs on ${PRETTY_NAME:-a system without /etc/os-release}, whose apt sources name no Debian archive: run it in a Debian container (container: {image: \"debian:bookworm\", options: --privileged}) or give the action a mirror"
fi
if [ -n "${INPUT_MIRROR:-}" ]; then
  echo "BPFVM_MIRROR=$INPUT_MIRROR" >> "$GITHUB_ENV"
fi

# A runner user (not root) opens /dev/kvm through a udev rule; root in a container can already.
if [ -e /dev/kvm ] && ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; } && command -v udevadm >/dev/null; then
  echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' \
    | as_root tee /etc/udev/rules.d/99-bpfvm-kvm.rules >/dev/null
  as_root udevadm control --reload-rules
  as_root udevadm trigger --name-match=kvm
fi

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "installing Debian packages: python3 python3-venv"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi
python=python${INPUT_PYTHON_VERSION:-3}
command -v "$python" >/dev/null \
  || fail "$python is not in this job's image (${PRETTY_NAME:-unknown}): pick an image whose Python it is (Debian bookworm has 3.11, trixie 3.13) or leave python-version at 3"

venv=$RUNNER_TEMP/bpfvm-venv
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC2086  # pip-install is a list of pip arguments
"$venv/bin/pip" install -q --disable-pip-version-check "$GITHUB_ACTION_PATH" $INPUT_PIP_INSTALL
echo "$venv/bin" >> "$GITHUB_PATH"

# Building kernels (a flavour such as 6.12-test) or a foreign arch's root needs more packages.
build=
case ",$INPUT_KERNELS," in *-*) build=--build ;; esac
host=$("$venv/bin/python" -c 'from bpfvm.arches import host_arch; print(host_arch())')
for arch in ${INPUT_ARCHES//,/ }; do [ "$arch" = "$host" ] || build=--build; done
"$venv/bin/bpfvm" setup --quiet $build

cache=$("$venv/bin/python" -c 'from bpfvm.host.kernels.cache import cache_dir; print(cache_dir())')
echo "BPFVM_CACHE=$cache" >> "$GITHUB_ENV"
echo "CCACHE_DIR=$cache/ccache" >> "$GITHUB_ENV"
name=${INPUT_ARTIFACT_NAME:-bpfvm-$INPUT_KERNELS-$INPUT_ARCHES}
{
  echo "cache-dir=$cache"
  echo "cache-prefix=bpfvm-$(uname -m)-$INPUT_KERNELS-$INPUT_ARCHES"
  echo "week=$(date -u +%G-w%V)"
  echo "out=$RUNNER_TEMP/bpfvm-out"
  echo "artifact=${name//[\":<>|*?\\\/]/_}"
} >> "$GITHUB_OUTPUT"
