// A child stopped before its exec (issue 11, defect 1). With CLONE_VFORK the
// thread that creates a child waits in clone() until the child execs; on the
// main of 2026-12-03 that thread was the reactor, so one child stopped there by
// another process of its uid froze every timeout, reap and spawn of the process
// for good: each test here hung (or hit its deadline) there.
//
// Two kinds of tests: the child stops itself right before its exec (a test-only
// switch, `testStopBeforeExec`: deterministic), and a real attacker of the same
// uid stops every new pid it may signal (the reproduction from the issue).
@testable import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.exclusive, .serialized)
struct StoppedChildTests {
    /// With a timeout: the run ends at that timeout, counted from the start of
    /// the spawn, as a timed-out run killed by SIGKILL, with its pid.
    @Test func stoppedBeforeExecEndsAtItsTimeout() async throws {
        let timeout = Duration.seconds(1)
        var config = Configuration(executable: "/bin/true")
        config.testStopBeforeExec = true
        config.timeout = timeout
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        let elapsed = ContinuousClock.now - started
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.kill))
        #expect(result.processID > 0)
        #expect(elapsed >= TestTime.notBefore(timeout), "\(elapsed)")
        #expect(elapsed < TestTime.endsBy(timeout), "\(elapsed)")
    }

    /// Without a timeout: the pre-exec deadline kills it and the spawn fails with
    /// step exec and ETIMEDOUT.
    @Test func stoppedBeforeExecFailsAtThePreExecDeadline() async throws {
        var config = Configuration(executable: "/bin/true")
        config.testStopBeforeExec = true
        config.preExecDeadline = .milliseconds(300)
        let started = ContinuousClock.now
        let error = try await withDeadline(TestTime.hang) { [config] in
            await expectSpawnError { _ = try await run(config) }
        }
        let elapsed = ContinuousClock.now - started
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "exec")
        #expect(error?.errno == ETIMEDOUT)
        #expect(error?.message.contains("pre-exec deadline") == true, "\(String(describing: error))")
        #expect(elapsed >= TestTime.notBefore(.milliseconds(300)))
        // The same through withChildProcess, which throws at the spawn.
        let scoped = try await withDeadline(TestTime.hang) { [config] in
            await expectSpawnError { _ = try await withChildProcess(config) { _ in } }
        }
        #expect(scoped?.errno == ETIMEDOUT)
    }

    /// A child of this process stopped before its exec (still named after the
    /// spawning thread), once it is there.
    private func waitForAStoppedChild() async throws -> pid_t {
        let end = ContinuousClock.now + TestTime.hang
        while ContinuousClock.now < end {
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap({ pid_t($0) }) ?? [] {
                guard let stat = ProcFS.readFile("/proc/\(pid)/stat") else { continue }
                let text = String(decoding: stat, as: UTF8.self)
                guard text.contains("(asyncspawn-sp)"), let close = text.lastIndex(of: ")") else { continue }
                let fields = text[text.index(after: close)...].split(separator: " ")
                if fields.count > 2 && fields[0] == "T" && fields[1] == "\(getpid())" { return pid }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw PreconditionUnmet("no child of this process stopped before its exec")
    }

    /// Cancelling a run whose child is stopped before its exec ends it at once
    /// (the spawner kills the child inside clone), not at the pre-exec deadline
    /// or never: found by review after the first fix of defect 1.
    @Test func cancellingAStoppedSpawn() async throws {
        var config = Configuration(executable: "/bin/true")
        config.testStopBeforeExec = true
        config.preExecDeadline = TestTime.childLifetime
        for scoped in [false, true] {
            let task = Task { [config] in
                if scoped {
                    _ = try await withChildProcess(config) { _ in }
                } else {
                    _ = try await run(config)
                }
            }
            let stopped = try await waitForAStoppedChild()
            let cancelled = ContinuousClock.now
            task.cancel()
            let outcome = try await withDeadline(TestTime.hang) { await task.result }
            #expect(ContinuousClock.now - cancelled < TestTime.endsBy(.zero))
            switch outcome {
            case .success: Issue.record("the cancelled \(scoped ? "withChildProcess" : "run") succeeded")
            case .failure(let error): #expect(error is CancellationError, "\(error)")
            }
            #expect(kill(stopped, 0) != 0, "the stopped child \(stopped) is still there")
        }
    }

    /// A pre-exec deadline shorter than the timeout wins: spawn failure, not timeout.
    @Test func preExecDeadlineBeforeTheTimeout() async throws {
        var config = Configuration(executable: "/bin/true")
        config.testStopBeforeExec = true
        config.preExecDeadline = .milliseconds(200)
        config.timeout = TestTime.childLifetime
        let error = try await withDeadline(TestTime.hang) { [config] in
            await expectSpawnError { _ = try await run(config) }
        }
        #expect(error?.step == "exec")
        #expect(error?.errno == ETIMEDOUT)
    }

    /// Three children stopped before exec at once hold three spawning threads;
    /// meanwhile other spawns go ahead on other threads, and timeouts and reaps
    /// still run: every quick run ends before any stopped one is killed.
    @Test func stoppedChildrenDoNotHoldOtherSpawns() async throws {
        let hold = TestTime.slack
        var stopped = Configuration(executable: "/bin/true")
        stopped.testStopBeforeExec = true
        stopped.timeout = hold
        stopped.preExecDeadline = hold + TestTime.slack  // the timeout ends them, not this
        let quickTimeout = Duration.milliseconds(200)
        let (quickDone, stoppedDone, results) = try await withDeadline(TestTime.hang(forOperations: 60)) {
            [stopped] in
            try await withThrowingTaskGroup(of: (String, ContinuousClock.Instant, RunResult).self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        let r = try await run(stopped)
                        return ("stopped", .now, r)
                    }
                }
                // Let them reach their stop (a spawner thread each) before the rest.
                try await Task.sleep(for: .milliseconds(100))
                for i in 0..<50 {
                    group.addTask {
                        if i % 10 == 0 {
                            // A run whose timeout must still fire on time.
                            var c = Probe.config("sleep", TestTime.childSleep)
                            c.timeout = quickTimeout
                            let r = try await run(c)
                            return ("quick", .now, r)
                        }
                        let r = try await run("/bin/true")
                        return ("quick", .now, r)
                    }
                }
                var quickDone = ContinuousClock.Instant.now, stoppedDone: [ContinuousClock.Instant] = []
                var results: [(String, RunResult)] = []
                for try await (kind, at, result) in group {
                    if kind == "quick" { quickDone = max(quickDone, at) } else { stoppedDone.append(at) }
                    results.append((kind, result))
                }
                return (quickDone, stoppedDone, results)
            }
        }
        for (kind, result) in results where kind == "stopped" {
            #expect(result.outcome == .timedOut)
            #expect(result.termination == .signaled(.kill))
        }
        #expect(results.filter { $0.0 == "quick" && $0.1.outcome == .exited }.count == 45)
        #expect(results.filter { $0.0 == "quick" && $0.1.outcome == .timedOut }.count == 5)
        #expect(stoppedDone.allSatisfy { quickDone < $0 }, "a quick run waited for a stopped child")
    }

    /// The reproduction: an attacker of the children's uid SIGSTOPs every new pid
    /// it may signal, beside runs of `/bin/true` as that uid with a 500 ms timeout
    /// (and a filter, loaded after the uid drop, widening the window). Every run
    /// ends (exited, or timed out), and the runs of another uid, beside them,
    /// never wait for them.
    @Test func attackerOfTheSameUIDCannotFreezeSpawns() async throws {
        let uid = try UnusedUser.next()
        var attacker = Configuration(executable: Probe.worldExecutableCopy, arguments: ["stop-new-pids"])
        attacker.credentials = Credentials(userID: uid, groupID: uid)
        attacker.timeout = TestTime.hang
        var victim = Configuration(executable: "/bin/true")
        victim.credentials = Credentials(userID: uid, groupID: uid)
        victim.timeout = .milliseconds(500)
        victim.seccomp = .preset(.noAdministration).merging(.preset(.noProcessInspection))
        victim.standardOutput = .null
        victim.standardError = .null
        let (terminations, _) = try await withDeadline(TestTime.hang(forOperations: 200)) { [attacker, victim] in
            try await withChildProcess(attacker) { child -> [(Outcome, Termination)] in
                var lines = child.standardOutput.lines.makeAsyncIterator()
                _ = try await lines.next()  // "ready"
                defer { _ = kill(child.processID, SIGKILL) }
                var terminations: [(Outcome, Termination)] = []
                for _ in 0..<20 {
                    // A victim and, beside it, a run of root that nobody attacks.
                    async let bystander = run("/bin/true")
                    let r = try await run(victim)
                    terminations.append((r.outcome, r.termination))
                    #expect(try await bystander.termination == .exited(0))
                }
                return terminations
            }
        }
        #expect(terminations.allSatisfy { $0.0 == .exited || $0.0 == .timedOut }, "\(terminations)")
        // Stopped before its exec: the watchdog's SIGKILL at the timeout. (After
        // its exec, the teardown's SIGTERM and SIGCONT end it instead.)
        // Whether it caught one depends on the scheduler (the tests above make
        // sure of what happens then); that every run ended is what counts here.
        let beforeExec = terminations.filter { $0.0 == .timedOut && $0.1 == .signaled(.kill) }.count
        print("attackerOfTheSameUIDCannotFreezeSpawns: \(beforeExec) of \(terminations.count) caught before their exec")
    }
}
