#!/usr/bin/env bash
# Builds `spawn` and runs a small piece of untrusted code under limits:
# it grabs memory until RLIMIT_AS stops it, then spins until RLIMIT_CPU kills it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product spawn >&2
set -x
.build/release/spawn --json --cpu 1 --as 256M --nofile 32 --timeout 10s \
    -- python3 Examples/untrusted/greedy.py || echo "spawn exited with $?" >&2
