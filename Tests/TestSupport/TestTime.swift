// Every wall-clock bound a test uses comes from here.
//
// A test asserts behaviour: what the child saw, what the parent got, that
// something ended, and that it ended because of the library (a timeout, a
// grace period, a cancellation) rather than by itself. Speed is judged only in
// Benchmarks/. So an upper bound here is never "how fast this should be": it is
// either a hang detector or "well before the child would have ended on its own",
// and the children that must be ended by the library live for
// ``TestTime/childLifetime``, far beyond any bound.
//
// The bounds are wide on purpose (CI shares 2 cores with whatever else runs) and
// scale with the build: a sanitizer makes the test process several times slower.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

public enum TestTime {
    /// How much slower than a plain build on a quiet machine this test process
    /// may be: 1 for a plain build, 4 under a sanitizer, times the value of
    /// `ASYNCSPAWN_TEST_TIME_SCALE` when it is set (a number >= 1; for a machine
    /// known to be slower still).
    public static let scale: Double = {
        var s = isSanitized ? 4.0 : 1.0
        if let text = getenv("ASYNCSPAWN_TEST_TIME_SCALE").map({ String(cString: $0) }),
            let extra = Double(text), extra >= 1
        {
            s *= extra
        }
        return s
    }()

    /// The slack allowed on top of a duration the library is asked to keep (a
    /// timeout, a grace period), before a test says the library did not keep it:
    /// 10 s on a plain build.
    public static var slack: Duration { .seconds(10 * scale) }

    /// How long an operation that is not the subject of a test may take before the
    /// test calls it hung (a deadline on a whole run, on waiting for a child's
    /// first line, for a process to disappear): 60 s on a plain build. Waits that
    /// poll return as soon as their condition holds, so this costs nothing when
    /// the test passes.
    public static var hang: Duration { .seconds(60 * scale) }

    /// ``hang`` for `n` operations in a row or in flight at once (a batch of
    /// spawns, a race loop): the bound grows with the work, at 1/10 s each.
    public static func hang(forOperations n: Int) -> Duration { hang + .seconds(0.1 * Double(n) * scale) }

    /// The latest a run asked to end after `nominal` (its timeout, or timeout plus
    /// grace) may end: `nominal` plus ``slack``. Children the library must end
    /// live for ``childLifetime``, so a run that passes this bound would
    /// have been ended by the library, not by its child.
    public static func endsBy(_ nominal: Duration) -> Duration { nominal + slack }

    /// The earliest a run asked to end after `nominal` may end. Timeouts are
    /// measured from the start of the spawn, so a test's own clock (started
    /// before) sees at least `nominal`; 20 ms are allowed for the difference
    /// between the two clocks' readings.
    public static func notBefore(_ nominal: Duration) -> Duration { nominal - .milliseconds(20) }

    /// How long a child that must be ended by the library (a timeout, a
    /// cancellation, a teardown) would live on its own: an hour, far beyond any
    /// bound here. Use ``childSleep`` for its `sleep` argument.
    public static let childLifetime: Duration = .seconds(3600)

    /// ``childLifetime`` as an argument for `sleep(1)`.
    public static let childSleep = "3600"
}

extension Duration {
    /// This duration in seconds, as a `Double` (for tests that time with a
    /// monotonic clock read as seconds).
    public var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
