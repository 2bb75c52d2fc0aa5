#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite:
#   1. the library tests and 2. the CLI tests (two processes: the CLI tests block
#      threads while the spawn binary runs, and must not starve the cooperative
#      pool the library tests time things on);
#   3. a short soak (5,000 spawns of every kind, 256 at a time, with leak checks);
#   4. the concurrency tests again under the thread sanitizer, and the stream,
#      race and failure tests under the address sanitizer (scripts/asan.sh runs
#      every test under it);
#   5. the DocC documentation, built with warnings as errors;
#   6. AsyncSpawn next to swift-subprocess and Foundation's Process in one test
#      process (Integration/SubprocessInterop, a package of its own);
#   7. the example server's tests, when Examples/CodeRunner exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*"; }

step "build"
swift build --build-tests

step "library tests"
swift test --skip-build --filter AsyncSpawnTests

step "CLI tests"
swift test --skip-build --filter spawnTests

step "soak (short form)"
.build/debug/soak --spawns 5000 --concurrency 256 --check-every 1000

step "thread sanitizer"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
    --filter "ReadmeExamplesTests|RaceTests|SeccompTests"

step "address sanitizer (the stream, race and failure tests; scripts/asan.sh runs them all)"
swift build --build-tests --sanitize=address --scratch-path .build-asan
ASAN_OPTIONS=detect_leaks=1 swift test --skip-build --sanitize=address --scratch-path .build-asan \
    --filter "ReadmeExamplesTests|RaceTests|StreamingTests|FailureTests|ReactorTests"

step "documentation (DocC, warnings are errors)"
swift package generate-documentation --target AsyncSpawn --warnings-as-errors

step "swift-subprocess and AsyncSpawn in one process"
bash Integration/SubprocessInterop/test.sh

if [ -f Examples/CodeRunner/test.sh ]; then
    step "example server"
    bash Examples/CodeRunner/test.sh
fi
