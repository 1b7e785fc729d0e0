#!/usr/bin/env bash
# scripts/demo.sh - set up (scripts/setup.sh), then run the main job: `lb demo` builds the NAT, DR and
# TUN labs in network namespaces in turn, sends real HTTP requests through the balancer, shows the
# distribution and what each mode rewrote, and tears everything down.  Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -ne 0 ]; then
	exec sudo "$PWD/.venv/bin/lb" demo "$@"
fi
exec .venv/bin/lb demo "$@"
