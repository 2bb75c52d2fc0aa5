// Races (issue 5), each run many times: cancellation racing the child's
// natural exit; the timeout racing the exit; a consumer abandoning the output
// mid-stream; two tasks signalling the same child; cancelling while the stdin
// writer is blocked on a full pipe.
//
// Every iteration must end (batches run under withDeadline: a hang fails
// instead of hanging the run), its termination must be reported (statusLost
// would mean a lost status or a double reap: it must never occur here), and the
// outcome must agree with the termination. Afterwards this process's
// descriptors, threads and zombie children are back to their baseline.
//
// Counts: 1,000 iterations per race where an iteration is cheap (a few ms);
// fewer where noted. Iterations run a few at a time (the `concurrency` of each
// batch) so that the interleavings vary and the suite stays within ~60 s on a
// loaded 2-core machine.

import AsyncSpawn
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Counts of what the iterations of one race saw, by label.
private final class Tally: Sendable {
    private let counts = TestMutex<[String: Int]>([:])
    func add(_ label: String) { counts.withLock { $0[label, default: 0] += 1 } }
    func get(_ label: String) -> Int { counts.withLock { $0[label] ?? 0 } }
    var summary: String {
        counts.withLock { c in c.keys.sorted().map { "\($0)=\(c[$0]!)" }.joined(separator: " ") }
    }
}

/// Runs `iterations` calls of `body` (given the iteration number),
/// `concurrency` at a time; each batch must finish within `batchDeadline` (a
/// hang detector).
private func repeatRace(
    _ what: String, iterations: Int, concurrency: Int, batchDeadline: Duration = TestTime.hang,
    _ body: @escaping @Sendable (Int) async throws -> Void
) async throws {
    var start = 0
    while start < iterations {
        let range = start..<min(start + concurrency, iterations)
        try await withDeadline(batchDeadline, "\(what), iterations \(range)") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in range { group.addTask { try await body(i) } }
                try await group.waitForAll()
            }
        }
        start = range.upperBound
    }
}

/// A random pause of up to `maxMicroseconds`, to move the race's window around.
/// (Jitter, not synchronisation: both orders are valid outcomes.)
private func jitter(_ maxMicroseconds: Int) async {
    let us = Int.random(in: 0...maxMicroseconds)
    if us == 0 { await Task.yield() } else { try? await Task.sleep(for: .microseconds(us)) }
}

/// Records an error that must not happen; statusLost is called out by name.
private func unexpected(_ error: any Error, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    if let e = error as? SpawnError, e.code == .statusLost {
        Issue.record("\(context): termination status lost (double reap?): \(e)", sourceLocation: sourceLocation)
    } else {
        Issue.record("\(context): unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// A buffer much larger than a pipe (64 KiB by default, 1 MiB at most for an
/// unprivileged F_SETPIPE_SZ) for writers that must block.
private let fourMegabytes = [UInt8](repeating: 0x62, count: 4 << 20)
private let pipeFull = [UInt8](repeating: 0x61, count: 64 << 10)

@Suite(Gate.exclusive, .serialized)
struct RaceTests {
    /// Cancellation racing the natural exit of a child that exits at once.
    /// Through withChildProcess + waitForReport the status is always reported:
    /// either the child won (exited(0), outcome exited — or cancelled when the
    /// cancellation came between its exit and its reaping) or the teardown did
    /// (SIGTERM, outcome cancelled). Through run(), cancellation throws
    /// CancellationError and a completed run is exited(0). 1,000 + 1,000.
    @Test func cancellationRacingNaturalExit() async throws {
        let baseline = try await HardeningBaseline.take()
        let tally = Tally()
        let config = Probe.config("exit", "0")
        try await repeatRace("cancel vs exit (withChildProcess)", iterations: 1000, concurrency: 4) { _ in
            let task = Task { try await withChildProcess(config) { child in try await child.waitForReport() } }
            await jitter(8000)
            task.cancel()
            switch await task.result {
            case .success(let (inner, report)):
                #expect(inner == report, "the body's report and the returned one differ")
                switch report.termination {
                case .exited(0):
                    #expect(report.outcome == .exited || report.outcome == .cancelled, "\(report.outcome)")
                    tally.add("exited/\(report.outcome.rawValue)")
                case .signaled(.terminate):
                    #expect(report.outcome == .cancelled, "\(report.outcome)")
                    tally.add("terminated")
                default:
                    Issue.record("termination \(report.termination), outcome \(report.outcome)")
                }
            case .failure(let error) where error is CancellationError:
                tally.add("CancellationError")
            case .failure(let error):
                unexpected(error, "cancel vs exit")
            }
        }
        try await repeatRace("cancel vs exit (run)", iterations: 1000, concurrency: 4) { _ in
            let task = Task { try await run(config) }
            await jitter(10_000)
            task.cancel()
            switch await task.result {
            case .success(let result):
                #expect(result.termination == .exited(0) && result.outcome == .exited,
                        "\(result.termination) \(result.outcome)")
                tally.add("run completed")
            case .failure(let error) where error is CancellationError:
                tally.add("run cancelled")
            case .failure(let error):
                unexpected(error, "cancel vs exit (run)")
            }
        }
        print("cancellationRacingNaturalExit: \(tally.summary)")
        await baseline.expectBack("cancel vs exit")
    }

    /// The timeout racing the exit: the child sleeps 10 ms, the timeout is 5–15
    /// ms. Either the child exited (exited(0); outcome exited, or timed_out when
    /// the timer fired between its exit and its reaping) or the timeout ended it
    /// (SIGTERM, timed_out; SIGKILL when it fired before the child's exec).
    /// Never an error. 1,000 iterations, 8 at a time.
    @Test func timeoutRacingExit() async throws {
        let baseline = try await HardeningBaseline.take()
        let tally = Tally()
        try await repeatRace("timeout vs exit", iterations: 1000, concurrency: 8) { _ in
            var config = Probe.config("sleep", "0.01")
            config.timeout = .microseconds(Int.random(in: 5_000...15_000))
            do {
                let result = try await run(config)
                switch result.termination {
                case .exited(0):
                    #expect(result.outcome == .exited || result.outcome == .timedOut, "\(result.outcome)")
                    tally.add("exited/\(result.outcome.rawValue)")
                case .signaled(.terminate):
                    #expect(result.outcome == .timedOut, "\(result.outcome)")
                    tally.add("terminated")
                case .signaled(.kill):
                    // The timeout (counted from the start of the spawn) came before
                    // the child's exec: the spawner's watchdog killed it there.
                    #expect(result.outcome == .timedOut, "\(result.outcome)")
                    tally.add("killed before exec")
                default:
                    Issue.record("termination \(result.termination), outcome \(result.outcome)")
                }
            } catch {
                unexpected(error, "timeout vs exit")
            }
        }
        print("timeoutRacingExit: \(tally.summary)")
        #expect(tally.get("terminated") + tally.get("killed before exec") + tally.get("exited/exited")
                + tally.get("exited/timed_out") == 1000)
        await baseline.expectBack("timeout vs exit")
    }

    /// A consumer abandons a 10 MB stream after 1–4 chunks:
    /// - breaking out of `for try await` and leaving the scope: the child is
    ///   torn down (SIGTERM; or SIGPIPE once its pipe is closed);
    /// - ChildOutput.close() and then wait(): the child's next write gets SIGPIPE;
    /// - close() from another task while the reader is suspended in next(): the
    ///   reader ends cleanly (no error: it must never touch a closed descriptor),
    ///   and the child gets SIGPIPE (or exits 0 if the reader got everything first).
    /// 1,000 each.
    @Test func consumerAbandonsTheStream() async throws {
        let baseline = try await HardeningBaseline.take()
        let tally = Tally()
        let config = Probe.config("write", "10000000")
        try await repeatRace("break out of the stream", iterations: 1000, concurrency: 4) { i in
            let chunks = 1 + i % 4
            do {
                let (read, report) = try await withChildProcess(config) { child -> Int in
                    var n = 0
                    for try await _ in child.standardOutput {
                        n += 1
                        if n >= chunks { break }
                    }
                    return n
                }
                #expect(read == chunks)
                #expect(report.termination == .signaled(.terminate) || report.termination == .signaled(.pipe),
                        "\(report.termination)")
                #expect(report.outcome == .signaled, "\(report.outcome)")
                tally.add("break/\(report.termination)")
            } catch {
                unexpected(error, "break out of the stream")
            }
        }
        try await repeatRace("close() then wait", iterations: 1000, concurrency: 4) { i in
            let chunks = 1 + i % 4
            do {
                let (termination, report) = try await withChildProcess(config) { child -> Termination in
                    var iterator = child.standardOutput.makeAsyncIterator()
                    for _ in 0..<chunks { _ = try await iterator.next() }
                    child.standardOutput.close()
                    // The iterator ends after a close, without touching the descriptor.
                    #expect(try await iterator.next() == nil)
                    return try await child.wait()
                }
                #expect(termination == .signaled(.pipe), "\(termination)")
                #expect(report.termination == termination)
                tally.add("close/\(termination)")
            } catch {
                unexpected(error, "close() then wait")
            }
        }
        try await repeatRace("close() from another task", iterations: 1000, concurrency: 4) { i in
            do {
                let ((read, termination), _) = try await withChildProcess(config) { child -> (Int, Termination) in
                    let firstChunk = Event()
                    async let reader: Int = {
                        var bytes = 0
                        for try await chunk in child.standardOutput {
                            if bytes == 0 { firstChunk.fire() }
                            bytes += chunk.count
                        }
                        return bytes
                    }()
                    await firstChunk.wait()
                    await jitter(i % 2 == 0 ? 0 : 200)
                    child.standardOutput.close()
                    let n = try await reader
                    return (n, try await child.wait())
                }
                #expect(read >= 1)
                // On a loaded machine the child may finish writing (the last bytes
                // into the pipe's buffer) before the closing task runs: then it
                // exits by itself, and the reader stops at the close with up to a
                // pipe's worth of the 10 MB unread.
                if termination == .exited(0) {
                    #expect(read <= 10_000_000 && read > 10_000_000 - (1 << 20), "exited(0) after \(read) bytes were read")
                } else {
                    #expect(termination == .signaled(.pipe), "\(termination)")
                }
                tally.add("concurrent close/\(termination)")
            } catch {
                unexpected(error, "close() from another task")
            }
        }
        print("consumerAbandonsTheStream: \(tally.summary)")
        await baseline.expectBack("abandoned streams")
    }

    /// Two tasks signal the same child at once:
    /// - send(.terminate) twice: at least one succeeds; a send that finds the
    ///   child already reaped fails with ESRCH (never reaches another process);
    ///   the termination is SIGTERM (1,000);
    /// - terminate() twice: both return, once the child is reaped (500);
    /// - send(.terminate) racing the child's own exit: exited(0) or SIGTERM (500).
    @Test func twoTasksSignalTheSameChild() async throws {
        let baseline = try await HardeningBaseline.take()
        let tally = Tally()
        @Sendable func send(_ child: ChildProcess) -> Int32 {
            do {
                try child.send(.terminate)
                return 0
            } catch let e as SpawnError {
                return e.errno ?? -1
            } catch {
                return -1
            }
        }
        let sleeper = Probe.config("sleep", TestTime.childSleep)  // ended by the signals
        try await repeatRace("send twice", iterations: 1000, concurrency: 4) { _ in
            do {
                let ((a, b, termination), report) = try await withChildProcess(sleeper) { child -> (Int32, Int32, Termination) in
                    async let a = send(child)
                    async let b = send(child)
                    let (ra, rb) = await (a, b)
                    return (ra, rb, try await child.wait())
                }
                #expect(a == 0 || b == 0, "both sends failed: \(a) \(b)")
                #expect((a == 0 || a == ESRCH) && (b == 0 || b == ESRCH), "send errors \(a) \(b)")
                #expect(termination == .signaled(.terminate))
                #expect(report.termination == .signaled(.terminate) && report.outcome == .signaled)
                tally.add(a == 0 && b == 0 ? "both delivered" : "one ESRCH")
            } catch {
                unexpected(error, "send twice")
            }
        }
        try await repeatRace("terminate twice", iterations: 500, concurrency: 4) { _ in
            do {
                let ((reapedAfterA, reapedAfterB, termination), report) = try await withChildProcess(sleeper) {
                    child -> (Bool, Bool, Termination) in
                    async let a: Bool = { await child.terminate(); return Proc.isDead(child.processID) }()
                    async let b: Bool = { await child.terminate(); return Proc.isDead(child.processID) }()
                    let (ra, rb) = await (a, b)
                    return (ra, rb, try await child.wait())
                }
                #expect(reapedAfterA && reapedAfterB, "terminate() returned before the child was gone")
                #expect(termination == .signaled(.terminate))
                #expect(report.termination == termination)
                tally.add("terminate twice")
            } catch {
                unexpected(error, "terminate twice")
            }
        }
        let quick = Probe.config("exit", "0")
        try await repeatRace("send vs exit", iterations: 500, concurrency: 4) { _ in
            do {
                let ((sent, termination), report) = try await withChildProcess(quick) { child -> (Int32, Termination) in
                    await jitter(2000)
                    let r = send(child)
                    return (r, try await child.wait())
                }
                #expect(sent == 0 || sent == ESRCH, "send: \(sent)")
                switch termination {
                case .exited(0): tally.add("send vs exit: exited (send \(sent == 0 ? "ok" : "ESRCH"))")
                case .signaled(.terminate):
                    #expect(sent == 0)
                    tally.add("send vs exit: terminated")
                default: Issue.record("termination \(termination)")
                }
                #expect(report.termination == termination)
            } catch {
                unexpected(error, "send vs exit")
            }
        }
        print("twoTasksSignalTheSameChild: \(tally.summary)")
        await baseline.expectBack("concurrent signals")
    }

    /// Cancelling while the stdin writer is suspended on a full pipe (the
    /// child never reads):
    /// - the body only writes: the task throws CancellationError, the child is
    ///   gone (1,000);
    /// - the writer is a child task and the body awaits waitForReport(): the
    ///   report comes back (outcome cancelled, SIGTERM) and the writer ends (500).
    @Test func cancellingABlockedStdinWriter() async throws {
        let baseline = try await HardeningBaseline.take()
        let tally = Tally()
        var config = Probe.config("sleep", TestTime.childSleep)  // ended by the cancellation
        config.standardInput = .pipe
        try await repeatRace("cancel a blocked writer", iterations: 1000, concurrency: 4) { [config] i in
            let pid = Box<Int32>(0)
            let filled = Event()
            let task = Task {
                try await withChildProcess(config) { child in
                    pid.set(child.processID)
                    try await child.standardInput.write(pipeFull)
                    filled.fire()
                    try await child.standardInput.write(fourMegabytes)
                }
            }
            await filled.wait()
            await jitter(i % 2 == 0 ? 0 : 500)
            task.cancel()
            switch await task.result {
            case .success: Issue.record("4 MiB were written to a child that never reads")
            case .failure(let error) where error is CancellationError: tally.add("CancellationError")
            case .failure(let error): unexpected(error, "cancel a blocked writer")
            }
            #expect(Proc.isDead(pid.get()), "child \(pid.get()) survived")
        }
        try await repeatRace("cancel a blocked writer, report awaited", iterations: 500, concurrency: 4) { [config] _ in
            let filled = Event()
            let task = Task {
                try await withChildProcess(config) { child -> (ProcessReport, String) in
                    async let writer: String = {
                        do {
                            try await child.standardInput.write(pipeFull)
                            filled.fire()
                            try await child.standardInput.write(fourMegabytes)
                            return "completed"
                        } catch let e as SpawnError {
                            filled.fire()
                            return "\(e.code)"
                        } catch {
                            filled.fire()
                            return "\(type(of: error))"
                        }
                    }()
                    let report = try await child.waitForReport()
                    return (report, await writer)
                }
            }
            await filled.wait()
            task.cancel()
            switch await task.result {
            case .success(let ((report, writer), outer)):
                #expect(report == outer)
                #expect(report.outcome == .cancelled, "\(report.outcome)")
                #expect(report.termination == .signaled(.terminate), "\(report.termination)")
                #expect(writer != "completed")
                tally.add("report/writer \(writer)")
            case .failure(let error) where error is CancellationError:
                Issue.record("waitForReport threw CancellationError instead of reporting")
            case .failure(let error):
                unexpected(error, "cancel a blocked writer, report awaited")
            }
        }
        print("cancellingABlockedStdinWriter: \(tally.summary)")
        await baseline.expectBack("cancelled writers")
    }
}
