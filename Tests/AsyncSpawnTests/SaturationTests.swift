// Values at the edges of their types: every Duration the library takes
// saturates instead of trapping, and every string is either a signal or nil
// (issue 11, defects 8 and 9). Each test here crashed the test process on the
// main of 2026-12-03 (`.seconds(Int64.max)` as a timeout trapped in
// ContinuousClock arithmetic; `Signal(parsing: "RTMIN+2147483647")` trapped on
// Int32 overflow).
@testable import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct SaturationTests {
    /// A timeout too large to represent means no timeout: the child runs to its end.
    @Test(arguments: [Duration.seconds(Int64.max), .seconds(Int64(1) << 32), Reactor.never + .nanoseconds(1)])
    func hugeTimeoutIsNoTimeout(timeout: Duration) async throws {
        var config = Configuration(executable: "/bin/sh", arguments: ["-c", "exit 7"])
        config.timeout = timeout
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.termination == .exited(7))
        #expect(result.outcome == .exited)
    }

    /// A huge grace never escalates: the child, killed by the first signal, is
    /// reported as such, and nothing traps on the way (the grace timer and the
    /// group's poll deadline).
    @Test func hugeGraceAndDrainTimeout() async throws {
        var config = Probe.config("sleep", TestTime.childSleep)
        config.timeout = .seconds(1)
        config.teardown = Teardown(signal: .terminate, grace: .seconds(Int64.max))
        config.drainTimeout = .seconds(Int64.max)
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.terminate))
    }

    /// A huge grace with a child that ignores the first signal: no SIGKILL comes
    /// (checked for a second after the timeout), the test ends the child itself.
    /// (A timeout of 1 s: it counts from the start of the spawn, so a much
    /// shorter one could expire before the child's exec on a busy machine, and
    /// end it there with SIGKILL, which is not what this test is about.)
    @Test func hugeGraceNeverSendsKill() async throws {
        var config = Probe.config("ignore-term", TestTime.childSleep)
        config.timeout = .seconds(1)
        config.teardown = Teardown(signal: .terminate, grace: .seconds(Int64.max))
        let (alive, report) = try await withDeadline(TestTime.hang) { [config] in
            try await withChildProcess(config) { child -> Bool in
                var lines = child.standardOutput.lines.makeAsyncIterator()
                _ = try await lines.next()  // "ready": SIGTERM is ignored from here on
                try await Task.sleep(for: .seconds(2))
                let alive = kill(child.processID, 0) == 0
                kill(child.processID, SIGKILL)
                return alive
            }
        }
        #expect(alive, "the child was gone a second after a timeout with a 2^63 s grace")
        #expect(report.outcome == .timedOut)
    }

    /// The reactor's timers over the whole range of Duration's seconds: no trap,
    /// and a delay of `Reactor.never` or more is never armed (the next deadline
    /// stays the one of the short timer).
    @Test func reactorTimersOverTheWholeRange() throws {
        let reactor = try Reactor.start()
        var generator = SystemRandomNumberGenerator()
        var ids: [UInt64] = []
        for i in 0..<10_000 {
            let seconds: Int64 = switch i % 4 {
            case 0: .random(in: .min ... .max, using: &generator)
            case 1: .random(in: (Int64(1) << 32) ... .max, using: &generator)
            case 2: Int64.max - .random(in: 0...1000, using: &generator)
            default: (Int64(1) << 32) + .random(in: -1000...1000, using: &generator)
            }
            let delay = Duration.seconds(seconds) + .nanoseconds(.random(in: 0..<1_000_000_000, using: &generator))
            // A timer due within the test would fire: not what this test is about.
            if delay < .seconds(3600) { continue }
            ids.append(reactor.schedule(after: delay) { Issue.record("a timer \(delay) away fired") })
        }
        #expect(Set(ids).count == ids.count)
        for id in ids { reactor.cancelTimer(id) }
    }

    /// The limit conversions saturate.
    @Test func limitConversionsSaturate() {
        #expect(LimitValue.microseconds(.seconds(Int64.max)) == .max)
        #expect(LimitValue.microseconds(.seconds(Int64(UInt64.max / 1_000_000))) <= .max)
        #expect(LimitValue.microseconds(.seconds(-5)) == 0)
        #expect(LimitValue.microseconds(.milliseconds(1500)) == 1_500_000)
        #expect(LimitValue.wholeSeconds(.seconds(Int64.max)) == UInt64(Int64.max))
        #expect(LimitValue.wholeSeconds(.milliseconds(1500)) == 2)
        var config = Configuration(executable: "/bin/true")
        config.limits.cpuTime = .seconds(.seconds(Int64.max))
        _ = config  // building it traps nowhere
    }

    /// Signal names and numbers at and past every edge: a signal in 1...64 or nil.
    @Test(arguments: [
        ("RTMIN+2147483647", nil), ("RTMIN+4294967296", nil), ("RTMAX--2147483648", nil),
        ("RTMAX-2147483647", nil), ("RTMIN+-1", nil), ("RTMAX-+1", nil), ("RTMIN+30", 64),
        ("RTMIN+31", nil), ("RTMAX-30", 34), ("RTMAX-31", nil), ("rtmin+0", 34), ("SIGRTMAX-0", 64),
        ("99999999999999999999", nil), ("-15", nil), ("-2147483648", nil), ("+15", nil),
        ("0", nil), ("65", nil), ("64", 64), ("1", 1), ("0015", 15), ("00000000000000000009", 9),
        ("RTMIN+00000000000000000002", 36), ("", nil), (" ", nil), ("TERM", 15), (" sigkill ", 9),
    ] as [(String, Int32?)])
    func signalEdges(text: String, expected: Int32?) {
        #expect(Signal(parsing: text)?.rawValue == expected, "\(text.debugDescription)")
    }

    /// Random strings in the alphabet of signal names: never a trap, and every
    /// parsed signal is in 1...64 and survives a round trip through its name.
    @Test func signalFuzz() {
        var generator = SystemRandomNumberGenerator()
        let pieces = ["RTMIN", "RTMAX", "+", "-", "SIG", "TERM", "KILL", "0", "9", "2147483647",
                      "2147483648", "4294967296", "9223372036854775807", "18446744073709551616", " ", "x"]
        for _ in 0..<50_000 {
            var text = ""
            for _ in 0..<Int.random(in: 0...5, using: &generator) { text += pieces.randomElement(using: &generator)! }
            if let s = Signal(parsing: text) {
                #expect((1...64).contains(s.rawValue), "\(text) parsed to \(s.rawValue)")
                #expect(Signal(parsing: s.name) == s, "\(text) -> \(s.name)")
            }
        }
    }
}
