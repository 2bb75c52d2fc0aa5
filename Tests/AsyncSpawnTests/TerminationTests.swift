// How children end: exit codes, signals, timeouts, cancellation, the teardown
// grace, the output limit.

import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct ExitTests {
    @Test(arguments: [0, 1, 3, 42, 255])
    func exitCodes(code: Int32) async throws {
        let result = try await run(Probe.config("exit", "\(code)"))
        #expect(result.termination == .exited(code))
        #expect(result.outcome == .exited)
        #expect(result.termination.isSuccess == (code == 0))
    }

    @Test func killedBySIGKILL() async throws {
        let result = try await run(Probe.config("kill-self", "KILL"))
        #expect(result.termination == .signaled(.kill))
        #expect(result.outcome == .signaled)
    }

    @Test func killedBySIGSEGV() async throws {
        var config = Probe.config("kill-self", "SEGV")
        config.limits.coreFileSize = .bytes(0)
        let result = try await run(config)
        #expect(result.termination == .signaled(.segmentationFault))
        #expect(result.outcome == .signaled)
    }

    @Test func killedBySIGTERM() async throws {
        let result = try await run(Probe.config("kill-self", "TERM"))
        #expect(result.termination == .signaled(.terminate))
        #expect(result.outcome == .signaled)
    }

    /// A SIGXFSZ that comes from elsewhere than a limit is still file_size_limit
    /// by the documented rule (killed by SIGXFSZ).
    @Test func sigxfszIsFileSizeLimit() async throws {
        let result = try await run(Probe.config("kill-self", "XFSZ"))
        #expect(result.termination == .signaled(.fileSizeLimitExceeded))
        #expect(result.outcome == .fileSizeLimit)
    }

    @Test func reportFields() async throws {
        let sleep = Duration.milliseconds(200)
        let before = ContinuousClock.now
        let result = try await run(Probe.config("sleep", "\(sleep.inSeconds)"))
        let elapsed = ContinuousClock.now - before
        #expect(result.termination == .exited(0))
        #expect(result.processID > 0)
        #expect(result.usage.wallTime >= TestTime.notBefore(sleep))
        #expect(result.usage.wallTime <= elapsed)
        #expect(result.usage.maxResidentSetKiB > 0)
        #expect(result.usage.userTime + result.usage.systemTime < .milliseconds(200))
    }

    @Test func cpuTimeIsMeasured() async throws {
        var config = Probe.config("spin")
        config.limits.cpuTime = Limit(soft: .value(1), hard: .value(2))
        config.timeout = .seconds(30)
        let result = try await run(config)
        #expect(result.usage.userTime >= .milliseconds(500), "\(result.usage)")
    }

    @Test func stderrIsCollectedSeparately() async throws {
        let result = try await run(Probe.config("stderr", "oops"))
        #expect(result.standardErrorString == "oops")
        #expect(result.standardOutput.isEmpty)
    }

    @Test func runWithExecutableAndArguments() async throws {
        let result = try await run(Probe.path, ["print-lines", "x", "y"])
        #expect(result.standardOutputString == "x\ny")
    }
}

@Suite(Gate.shared)
struct TimeoutTests {
    /// The timeout tears down the child and the grandchild it forked (same group).
    @Test func timeoutKillsChildAndGrandchildren() async throws {
        let timeout = Duration.milliseconds(500)
        var config = Probe.config("fork-sleep", TestTime.childSleep)
        config.timeout = timeout
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang, "run with a timeout") { [config] in try await run(config) }
        let elapsed = ContinuousClock.now - started
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.terminate))
        #expect(elapsed >= TestTime.notBefore(timeout), "returned after \(elapsed)")
        #expect(elapsed < TestTime.endsBy(timeout), "returned after \(elapsed)")
        #expect(result.usage.wallTime >= TestTime.notBefore(timeout))
        let report = Report(result.standardOutputString)
        let grandchild = try #require(report.int("grandchild"), "output: \(result.standardOutputString)")
        // run returns only when the group has been torn down: no waiting here.
        #expect(Proc.isDead(grandchild), "grandchild \(grandchild) state \(String(describing: Proc.state(grandchild)))")
        #expect(Proc.isDead(result.processID))
    }

    /// With `.inherit` there is no group of its own: the teardown signals the
    /// child alone, and this process (in the same group) is untouched.
    @Test func timeoutWithInheritedGroup() async throws {
        var config = Probe.config("sleep", TestTime.childSleep)
        config.processGroup = .inherit
        config.timeout = .milliseconds(300)
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.terminate))
    }

    /// A child that ignores SIGTERM is killed with SIGKILL after the grace.
    @Test func ignoredTermIsFollowedByKill() async throws {
        let (timeout, grace) = (Duration.seconds(2), Duration.milliseconds(200))
        var config = Probe.config("ignore-term", TestTime.childSleep)
        config.teardown = Teardown(signal: .terminate, grace: grace)
        config.timeout = timeout
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        let elapsed = ContinuousClock.now - started
        // "ready" proves SIGTERM was already ignored when the timeout fired.
        #expect(result.standardOutputString == "ready\n")
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.kill))
        #expect(elapsed >= TestTime.notBefore(timeout + grace), "\(elapsed)")
        #expect(elapsed < TestTime.endsBy(timeout + grace), "\(elapsed)")
    }

    /// The same through terminate(), synchronised on the probe's "ready" line.
    @Test func terminateWaitsTheGraceThenKills() async throws {
        let grace = Duration.milliseconds(200)
        var config = Probe.config("ignore-term", TestTime.childSleep)
        config.teardown = Teardown(signal: .terminate, grace: grace)
        let (elapsed, report) = try await withDeadline(TestTime.hang) { [config] in
            try await withChildProcess(config) { child -> Duration in
                var lines = child.standardOutput.lines.makeAsyncIterator()
                let first = try await lines.next()
                #expect(first == "ready")
                let before = ContinuousClock.now
                await child.terminate()
                return ContinuousClock.now - before
            }
        }
        #expect(report.termination == .signaled(.kill))
        #expect(elapsed >= TestTime.notBefore(grace), "\(elapsed)")
        #expect(elapsed < TestTime.endsBy(grace), "\(elapsed)")
    }

    /// A custom first signal.
    @Test func customTeardownSignal() async throws {
        var config = Probe.config("sleep", TestTime.childSleep)
        config.teardown = Teardown(signal: .interrupt, grace: .seconds(5))
        config.timeout = .milliseconds(200)
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.interrupt))
    }

    @Test func immediateTeardown() async throws {
        var config = Probe.config("ignore-term", TestTime.childSleep)
        config.teardown = .immediate
        config.timeout = .seconds(1)
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.kill))
    }

    /// A child that ends before its timeout is not timed out, and `run` returns
    /// at its exit, not at the timeout (which is far beyond the bound, so that
    /// a run waiting for its timer would fail it).
    @Test func fastChildIsNotTimedOut() async throws {
        var config = Probe.config("exit", "4")
        config.timeout = TestTime.childLifetime
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.outcome == .exited)
        #expect(result.termination == .exited(4))
        #expect(ContinuousClock.now - started < TestTime.endsBy(.zero))
    }
}

@Suite(Gate.shared)
struct CancellationTests {
    /// Cancelling the task running `run` tears down the child and its
    /// grandchildren; `run` throws CancellationError after reaping.
    @Test func cancellingRun() async throws {
        let marker = "asyncspawn-cancel-\(UUID().uuidString)"
        let config = Probe.config("fork-sleep", TestTime.childSleep, marker)
        let task = Task { try await run(config) }
        // The child and its grandchild carry the marker in their command line.
        var pids: [Int32] = []
        let deadline = ContinuousClock.now + TestTime.hang
        while pids.count < 2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            pids = Proc.processes(withArgument: marker).filter { Proc.isAlive($0) }
        }
        try #require(pids.count == 2, "child and grandchild not seen: \(pids)")
        task.cancel()
        let outcome = try await withDeadline(TestTime.hang, "the cancelled run") { await task.result }
        switch outcome {
        case .success(let result): Issue.record("run returned \(result.termination) instead of throwing")
        case .failure(let error): #expect(error is CancellationError, "threw \(error)")
        }
        for pid in pids { #expect(Proc.isDead(pid), "pid \(pid) survived the cancellation") }
    }

    /// The same with withChildProcess, synchronised on the probe's output.
    @Test func cancellingWithChildProcess() async throws {
        let pids = Box<[Int32]>([])
        let started = Event()
        let config = Probe.config("fork-sleep", TestTime.childSleep)
        let task = Task {
            try await withChildProcess(config) { child -> Termination in
                var lines = child.standardOutput.lines.makeAsyncIterator()
                let line = try await lines.next() ?? ""
                pids.set([child.processID] + (Int32(line.dropFirst("grandchild ".count)).map { [$0] } ?? []))
                started.fire()
                let termination = try await child.wait()
                try Task.checkCancellation()
                return termination
            }
        }
        try await withDeadline(TestTime.hang, "the child's first line") { await started.wait() }
        let seen = pids.get()
        try #require(seen.count == 2, "pids \(seen)")
        task.cancel()
        let outcome = try await withDeadline(TestTime.hang, "the cancelled withChildProcess") { await task.result }
        switch outcome {
        case .success(let value): Issue.record("returned \(value) instead of throwing")
        case .failure(let error): #expect(error is CancellationError, "threw \(error)")
        }
        for pid in seen { #expect(Proc.isDead(pid), "pid \(pid) survived the cancellation") }
    }

    /// `wait()` in a cancelled task tears the child down and reports `.cancelled`.
    @Test func waitForReportAfterCancellation() async throws {
        let started = Event()
        let config = Probe.config("sleep", TestTime.childSleep)
        let task = Task {
            try await withChildProcess(config) { child -> ProcessReport in
                started.fire()
                return try await child.waitForReport()
            }
        }
        try await withDeadline(TestTime.hang, "the spawn") { await started.wait() }
        task.cancel()
        let outcome = try await withDeadline(TestTime.hang) { await task.result }
        let (report, _) = try outcome.get()
        #expect(report.outcome == .cancelled)
        #expect(report.termination == .signaled(.terminate))
    }

    /// A task cancelled before it even starts the child.
    @Test func alreadyCancelled() async throws {
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await run(Probe.config("sleep", TestTime.childSleep))
        }
        let outcome = try await withDeadline(TestTime.hang) { await task.result }
        switch outcome {
        case .success(let r): Issue.record("a cancelled run returned \(r.termination)")
        case .failure(let error): #expect(error is CancellationError, "\(error)")
        }
    }
}

@Suite(Gate.shared)
struct OutputLimitTests {
    @Test func pastTheLimit() async throws {
        var config = Probe.config("write", "5000")
        config.outputLimit = 1000
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.standardOutput.count == 1000)
        #expect(result.standardOutput == probePattern(1000))
        #expect(result.standardOutputTruncated)
        #expect(!result.standardErrorTruncated)
        #expect(result.outcome == .outputLimit)
    }

    /// The child wrote past the limit and exited before the library read its
    /// output: the stream is cut, and the outcome must still say why.
    @Test func pastTheLimitAfterTheChildExited() async throws {
        var config = Probe.config("write", "5000")
        config.outputLimit = 1000
        let ((bytes, truncated, termination), report) = try await withDeadline(TestTime.hang) { [config] in
            try await withChildProcess(config) { child -> (Int, Bool, Termination) in
                let termination = try await child.wait()
                let bytes = try await child.standardOutput.collect()
                return (bytes.count, child.standardOutput.truncated, termination)
            }
        }
        #expect(termination == .exited(0))
        #expect(bytes == 1000)
        #expect(truncated)
        #expect(report.outcome == .outputLimit, "a truncated stream reported as \(report.outcome)")
    }

    @Test func exactlyTheLimit() async throws {
        var config = Probe.config("write", "1000")
        config.outputLimit = 1000
        let result = try await run(config)
        #expect(result.standardOutput.count == 1000)
        #expect(!result.standardOutputTruncated)
        #expect(result.outcome == .exited)
        #expect(result.termination == .exited(0))
    }

    @Test func stderrLimit() async throws {
        var config = Probe.config("write", "5000", "2")
        config.outputLimit = 100
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.standardError.count == 100)
        #expect(result.standardErrorTruncated)
        #expect(result.outcome == .outputLimit)
    }

    /// A producer that would never stop is stopped by the limit.
    @Test func endlessProducerIsStopped() async throws {
        var config = Probe.config("write", "100000000000")
        config.outputLimit = 1 << 20
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.standardOutput.count == 1 << 20)
        #expect(result.outcome == .outputLimit)
        #expect(result.termination == .signaled(.terminate) || result.termination == .signaled(.pipe))
    }

    /// Zero allows nothing.
    @Test func zeroLimit() async throws {
        var config = Probe.config("write", "100000")  // more than a pipe holds: the child is still running
        config.outputLimit = 0
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        #expect(result.standardOutput.isEmpty)
        #expect(result.standardOutputTruncated)
        #expect(result.outcome == .outputLimit)
    }
}
