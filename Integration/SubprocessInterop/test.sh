#!/usr/bin/env bash
# AsyncSpawn next to swift-subprocess and Foundation's Process in one test process
# (project issue 5). A package of its own, depending on the root by path, so that the
# root package does not depend on swift-subprocess. First build: about a minute.
set -euo pipefail
cd "$(dirname "$0")"

# libseccomp-dev, pkg-config, ... (what the root package needs to build).
bash ../../scripts/setup.sh

swift test
