// Every wall-clock bound these tests use comes from here: the same meaning as the
// root package's Tests/TestSupport/TestTime.swift, which this package (its own
// Package.swift) cannot import.
//
// A test asserts behaviour: what the run printed, what the server answered, that
// something ended, and that it ended because of the server (a wall limit, a
// client that went away, a queue timeout) rather than by itself. Speed is not
// judged here. So an upper bound is never "how fast this should be": it is either
// a hang detector or "well before the run would have ended on its own", and the
// programs the server must end live for ``TestTime/childLifetime``, far beyond
// any bound. The bounds are wide on purpose (CI shares 2 cores with whatever else
// runs) and scale with the build.

import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

enum TestTime {
    /// How much slower than a plain build on a quiet machine this test process
    /// may be: 1 for a plain build, 4 under a sanitizer, times the value of
    /// `ASYNCSPAWN_TEST_TIME_SCALE` when it is set (a number >= 1; for a machine
    /// known to be slower still).
    static let scale: Double = {
        let sanitized = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil
        var s = sanitized ? 4.0 : 1.0
        if let text = ProcessInfo.processInfo.environment["ASYNCSPAWN_TEST_TIME_SCALE"],
            let extra = Double(text), extra >= 1
        {
            s *= extra
        }
        return s
    }()

    /// The slack allowed on top of a duration the server is asked to keep (a wall
    /// limit, a queue timeout; zero for "at once"), before a test says the server
    /// did not keep it: 10 s on a plain build.
    static var slack: Duration { .seconds(10 * scale) }

    /// How long an operation that is not the subject of a test may take before the
    /// test calls it hung (an HTTP request, waiting for a pid, for a process to
    /// disappear, for the scratch root to empty; the wall limit of a run that is
    /// meant to end by itself): 60 s on a plain build. Waits that poll return as
    /// soon as their condition holds, so this costs nothing when the test passes.
    static var hang: Duration { .seconds(60 * scale) }

    /// ``hang`` for `n` operations in a row or in flight at once (a batch of
    /// requests): the bound grows with the work, at 1/10 s each.
    static func hang(forOperations n: Int) -> Duration { hang + .seconds(0.1 * Double(n) * scale) }

    /// How long a server may take to print its port: before it listens it probes
    /// its interpreters the way a run would, and a loaded 2-core machine was seen
    /// taking most of a minute for the first start. 150 s on a plain build.
    static var serverStart: Duration { hang * 2.5 }

    /// The latest something asked to happen after `nominal` (a wall limit, a queue
    /// timeout, or `.zero` for "at once") may happen: `nominal` plus ``slack``.
    static func endsBy(_ nominal: Duration) -> Duration { nominal + slack }

    /// The earliest something asked to happen after `nominal` may happen, on a
    /// clock started before the server's own: 20 ms are allowed for the
    /// difference between the two clocks' readings.
    static func notBefore(_ nominal: Duration) -> Duration { nominal - .milliseconds(20) }

    /// How long a program the server must end (a wall limit, a client that went
    /// away, the group teardown) would live on its own: an hour, far beyond any
    /// bound here. Use ``childSleep`` for its `sleep` argument.
    static let childLifetime: Duration = .seconds(3600)

    /// ``childLifetime`` as an argument for `sleep(1)` (or Python's `time.sleep`).
    static let childSleep = "3600"

    /// Swift Testing's time limit for one test (whole minutes): a server start,
    /// the largest batch of requests, and two more hang bounds (the scratch check,
    /// the stop) on top.
    static var testLimitMinutes: Int {
        Int(((serverStart + hang(forOperations: 50) + hang * 2).inSeconds / 60).rounded(.up))
    }
}

extension Duration {
    /// This duration in seconds, as a `Double`.
    var inSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// This duration as a NIO `TimeAmount` (for AsyncHTTPClient timeouts).
    var timeAmount: TimeAmount { .nanoseconds(Int64(inSeconds * 1e9)) }
}
