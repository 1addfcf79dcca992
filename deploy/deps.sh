#!/usr/bin/env bash
# Install the Debian packages tako-vm needs to build, run and test.
# Idempotent and quiet: prints nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config python3 python3-pip git
  libzmq3-dev libczmq-dev libmsgpack-dev libpq-dev postgresql
  libyaml-dev libcurl4-openssl-dev libseccomp-dev libmicrohttpd-dev
  libjansson-dev libcriterion-dev libpython3-dev
  iproute2 util-linux procps
)
# Extra tools used only by `make test` / `make fuzz` / `make bench`.
# runsc (gVisor) is optional: the build and the native sandbox never need
# it; with it installed, tests/integration/test_runsc.py runs jobs under it.
if [ "${1:-}" = "--test" ]; then
  PACKAGES+=(clang libclang-rt-14-dev valgrind runsc)
fi
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(wrk)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian postgresql package starts a cluster of its own; we never use it
# (tako-vm runs a private one under its data dir), so do not leave it running.
if printf '%s\n' "${missing[@]}" | grep -qx postgresql; then
  $SUDO pg_ctlcluster --force 15 main stop >/dev/null 2>&1 || true
fi
