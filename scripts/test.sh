#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite:
#   1. the library tests and 2. the CLI tests (separate processes: the CLI tests
#      block threads while the spawn binary runs; and the suites that time things
#      or load the machine each run in a process of their own, scripts/suites.sh);
#   3. a short soak (5,000 spawns of every kind, 256 at a time, with leak checks);
#   4. the concurrency tests again under the thread sanitizer, and the stream,
#      race and failure tests under the address sanitizer (scripts/asan.sh runs
#      every test under it);
#   5. the DocC documentation, built with warnings as errors;
#   6. AsyncSpawn next to swift-subprocess and Foundation's Process in one test
#      process (Integration/SubprocessInterop, a package of its own);
#   7. the example server's tests, when Examples/CodeRunner exists.
# Each stage's duration is printed as it ends, and all of them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/suites.sh

SUITE_LOG=$(mktemp)
STAGE_LOG=$(mktemp)
trap 'rm -f "$SUITE_LOG" "$STAGE_LOG"' EXIT
run_start=$SECONDS

summary() {
    local status=$?
    printf '\n==> summary (%s after %d s)\n' "$([ "$status" -eq 0 ] && echo green || echo RED)" $((SECONDS - run_start))
    cat "$STAGE_LOG" "$SUITE_LOG"
    rm -f "$SUITE_LOG" "$STAGE_LOG"
}
trap summary EXIT

# stage NAME COMMAND...: runs COMMAND, then prints and records how long it took.
stage() {
    local name=$1
    shift
    printf '\n==> %s\n' "$name"
    local start=$SECONDS
    "$@"
    printf '==> %s: %d s\n' "$name" $((SECONDS - start)) | tee -a "$STAGE_LOG"
}

stage "setup" bash scripts/setup.sh

stage "build" swift build --build-tests

stage "library tests" run_suites library AsyncSpawnTests all

stage "CLI tests" run_suites CLI spawnTests all

stage "soak (short form)" .build/debug/soak --spawns 5000 --concurrency 256 --check-every 1000

tsan_options=(--sanitize=thread --scratch-path .build-tsan)
stage "thread sanitizer: build" swift build --build-tests "${tsan_options[@]}"
stage "thread sanitizer: library tests" \
    run_suites tsan AsyncSpawnTests 'ReadmeExamplesTests|RaceTests|SeccompTests|StoppedChildTests' "${tsan_options[@]}"
stage "thread sanitizer: CLI tests" run_suites tsan-cli spawnTests 'SeccompTests' "${tsan_options[@]}"

# The stream, race and failure paths (scripts/asan.sh runs every test under it).
export ASAN_OPTIONS=detect_leaks=1
asan_options=(--sanitize=address --scratch-path .build-asan)
stage "address sanitizer: build" swift build --build-tests "${asan_options[@]}"
stage "address sanitizer: tests" run_suites asan AsyncSpawnTests \
    'ReadmeExamplesTests|RaceTests|StreamingTests|StepFailureTests|InvalidConfigurationTests|ReactorTests' \
    "${asan_options[@]}"
unset ASAN_OPTIONS

stage "documentation (DocC, warnings are errors)" \
    swift package generate-documentation --target AsyncSpawn --warnings-as-errors

stage "swift-subprocess and AsyncSpawn in one process" bash Integration/SubprocessInterop/test.sh

if [ -f Examples/CodeRunner/test.sh ]; then
    stage "example server" bash Examples/CodeRunner/test.sh
fi
