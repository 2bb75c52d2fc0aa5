# Which test suites run together, and which in a process of their own.
# Sourced by scripts/test.sh and scripts/asan.sh; defines run_suites.
#
# Suites whose subject is time (timeouts, grace periods, cancellation, the
# reactor's timers) or that load the machine (50 MB streams, race loops,
# stress-ng, thousands of spawns) each run in a `swift test` process of their
# own: a slow suite then cannot starve a timing-sensitive one of the cooperative
# pool or of the reactor. The rest, whose only wall-clock bounds are hang
# detectors (TestSupport/TestTime.swift), share one process.
#
# Before it runs anything, run_suites checks that every test of the target is
# in exactly one group, so a renamed suite cannot silently drop out of CI.

# Suites of AsyncSpawnTests that run alone, by suite type name.
LIBRARY_ALONE=(
    StreamingTests
    ExitTests TimeoutTests CancellationTests OutputLimitTests
    RaceTests
    RobustnessTests
    StoppedChildTests
    GroupEscapeTests
    FallbackTests
    GroupCensusTests
    SubreaperTests
    CloneParentTests
    StressNGTests PipeMisbehaviourTests ExecFailureTests ExecFailureLeakTests
    ReactorTests
    InteropTests
    FaultTests
)
# Suites of spawnTests that run alone.
CLI_ALONE=(
    TeardownTests
    StoppedChildTests
    GroupEscapeTests
    ExitStatusTests
    OutcomeTests
)

# run_suites LABEL TARGET SUBSET [swift test options...]
#   TARGET: AsyncSpawnTests or spawnTests.
#   SUBSET: an extended regular expression of suite type names to run, or "all".
# Runs the chosen suites of TARGET: the shared ones in one process, the others
# one process each. Appends "LABEL: N tests passed in S s" lines to $SUITE_LOG.
run_suites() {
    local label=$1 target=$2 subset=$3
    shift 3
    local alone
    if [ "$target" = AsyncSpawnTests ]; then
        alone=("${LIBRARY_ALONE[@]}")
    else
        alone=("${CLI_ALONE[@]}")
    fi

    # Every test of the target, as Module.Suite/test(...).
    local listing
    listing=$(swift test list --skip-build "$@" 2>/dev/null | grep -E "^$target\\.") || {
        echo "run_suites: cannot list the tests of $target" >&2
        return 1
    }
    local all_suites
    all_suites=$(sed -E 's/^[^.]+\.([A-Za-z0-9_]+)[/.].*/\1/' <<<"$listing" | sort -u)
    local s
    for s in "${alone[@]}"; do
        grep -qx "$s" <<<"$all_suites" || {
            echo "run_suites: suite $s is listed in scripts/suites.sh but $target has no such suite" >&2
            return 1
        }
    done

    local alone_pattern
    alone_pattern=$(IFS='|'; echo "${alone[*]}")
    local shared=()
    while read -r s; do
        [ -n "$s" ] || continue
        grep -qxE "$alone_pattern" <<<"$s" && continue
        shared+=("$s")
    done <<<"$all_suites"

    local groups=()
    local chosen_shared=()
    for s in "${shared[@]}"; do
        if [ "$subset" = all ] || grep -qxE "$subset" <<<"$s"; then chosen_shared+=("$s"); fi
    done
    if ((${#chosen_shared[@]})); then
        groups+=("$(IFS='|'; echo "${chosen_shared[*]}")")
    fi
    for s in "${alone[@]}"; do
        if [ "$subset" = all ] || grep -qxE "$subset" <<<"$s"; then groups+=("$s"); fi
    done

    local group out start status count
    for group in "${groups[@]}"; do
        printf '\n--> %s: %s\n' "$label" "$group"
        out=$(mktemp)
        start=$SECONDS
        status=0
        swift test --skip-build "$@" --filter "^$target\\.($group)/" 2>&1 | tee "$out" || status=$?
        count=$(grep -oE 'Test run with [0-9]+ tests?' "$out" | grep -oE '[0-9]+' | tail -1)
        # Swift Testing prints this line only when every test it ran passed.
        if [ "$status" -eq 0 ] && ! grep -qE 'Test run with [0-9]+ tests? (in [0-9]+ suites? )?passed' "$out"; then
            status=1
        fi
        rm -f "$out"
        printf '%s: %s tests (%s) %s in %d s\n' "$label" "${count:-?}" "$group" \
            "$([ "$status" -eq 0 ] && echo passed || echo FAILED)" $((SECONDS - start)) >>"$SUITE_LOG"
        [ "$status" -eq 0 ] || return "$status"
    done
}
