#!/usr/bin/env bash
# scripts/setup.sh - everything pyvs needs on a fresh Debian (12+) machine, idempotent:
#   1. Debian packages: C toolchain, clang + libFuzzer runtime, iproute2/nftables/tcpdump for the lab,
#      curl/wrk/iperf3/netsniff-ng (trafgen) for traffic, chromium for the teaching page tests;
#   2. a virtualenv in .venv with pyvs installed editable (this compiles the C core with cffi) and its
#      test extra.
# Called by scripts/demo.sh and scripts/test.sh; safe to run again (skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential python3-venv python3-dev libffi-dev pkg-config iproute2 nftables tcpdump
          iputils-ping curl wrk iperf3 netsniff-ng ethtool conntrack procps util-linux clang)
OPTIONAL_PKGS=(chromium)

need_apt=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need_apt+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "setup: installing ${need_apt[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# libFuzzer + sanitizer runtime matching the installed clang (package name carries clang's version).
clang_major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
rt="libclang-rt-${clang_major}-dev"
if ! dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q "ok installed"; then
	if apt-cache show "$rt" >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$rt" >/dev/null
	fi
fi
for p in "${OPTIONAL_PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p" >/dev/null 2>&1 ||
			echo "setup: optional package $p not installed (browser tests will be skipped outside CI)" >&2
	fi
done

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
	"$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel cffi
# Editable install compiles csched/ into lb/_csched*.so (out-of-line API mode).
.venv/bin/python -m pip install -q --no-build-isolation -e ".[test,bench]"
.venv/bin/python -c "import lb.core._ffi" # fails loudly if the extension and the package disagree
echo "setup: ok ($(.venv/bin/python --version), $(ls lb/_csched*.so))" >&2
