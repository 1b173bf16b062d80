#!/usr/bin/env bash
# `npm run bench [-- OPTIONS]`: dkim-relay against Postfix + OpenDKIM (../shared/peer), results in
# bench/RESULTS.md. Options: see `npm run bench -- --help` (--quick, --cases, --ref, --no-profile, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "npm run bench: run as root (../shared/peer/setup.sh installs and starts Postfix, OpenDKIM, dnsmasq, smtp-sink)" >&2; exit 1; }
exec /usr/bin/python3 bench/bench.py "$@"
