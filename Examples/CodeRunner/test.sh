#!/usr/bin/env bash
# Builds the CodeRunner example (its own package, depending on the root by path) and
# runs its tests: they start the real code-runner binary on 127.0.0.1 and talk HTTP
# to it. The first build takes several minutes (Hummingbird, SwiftNIO, AsyncHTTPClient).
set -euo pipefail
cd "$(dirname "$0")/../.."

# libseccomp-dev, pkg-config, python3, ... (what the root package needs).
bash scripts/setup.sh
# As root the runs drop to uid 65534, which cannot use an interpreter under /root
# (pyenv): the server then needs a system python3.
if [ "$(id -u)" -eq 0 ] && [ ! -x /usr/bin/python3 ] && [ ! -x /usr/local/bin/python3 ]; then
    echo "test.sh: installing python3 (a system interpreter for the sandbox user)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
fi

swift build --package-path Examples/CodeRunner --build-tests
swift test --package-path Examples/CodeRunner --skip-build
