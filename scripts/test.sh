#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# Two processes: the CLI tests block threads while the spawn binary runs, and
# must not starve the cooperative pool that the library tests time things on.
swift test --skip-build --filter AsyncSpawnTests
swift test --skip-build --filter spawnTests
