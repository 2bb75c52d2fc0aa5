// swift-subprocess 1.0.2 on Linux >= 5.4 takes a pidfd for each child it spawns (pidfd_open after
// posix_spawn, or clone3(CLONE_PIDFD)), watches it from its own epoll thread, and then reaps that
// child by pid alone (waitid(P_PID, pid, WEXITED)): no SIGCHLD handler (only on kernels without
// waitid(P_PIDFD), and even then it peeks per pid with WNOWAIT), never waitpid(-1)/P_ALL, and its
// teardown signals only its own pid. So neither library can reap or signal the other's children.

import AsyncSpawn
import Foundation
import Subprocess
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Time

/// Every wall-clock bound these tests use comes from here (the meaning of the root
/// package's Tests/TestSupport/TestTime.swift, which this package cannot import):
/// wide on purpose (CI shares 2 cores with whatever else runs), scaled for a
/// sanitizer and by `ASYNCSPAWN_TEST_TIME_SCALE`. Children that a library must end
/// (a timeout, a cancellation) live for ``childLifetime``, beyond any bound.
enum TestTime {
    /// 1 for a plain build, 4 under a sanitizer, times `ASYNCSPAWN_TEST_TIME_SCALE`
    /// when it is set (a number >= 1).
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

    /// How long an operation may take before a test calls it hung; waits that
    /// poll return as soon as their condition holds. 60 s on a plain build.
    static var hang: Duration { .seconds(60 * scale) }

    /// A hang detector for a whole test's batch of calls (several hundred, 24 in
    /// flight): 120 s on a plain build.
    static var batch: Duration { hang * 2 }

    /// How long a child that a library must end would live on its own.
    static let childLifetime: Duration = .seconds(3600)

    /// ``childLifetime`` as an argument for `sleep(1)`.
    static let childSleep = "3600"
}

/// Tests that measure the whole process (children, descriptors): one at a time.
@Suite(.serialized)
struct SubprocessInteropTests {
    static let rounds = 200        // children of each library per test
    static let width = 24          // calls in flight at once
    static var deadline: Duration { TestTime.batch }

    /// AsyncSpawn and swift-subprocess (200 children each, interleaved, 24 calls in
    /// flight) plus Foundation's Process on a thread of its own: every call of each
    /// returns the exact exit code and output of its own child.
    @Test func exitCodesAndOutputStayExact() async throws {
        let baseline = await warmUp()

        let (results, foundation) = try await withDeadline(Self.deadline, "mixed runs") {
            async let foundation = foundationRuns(codes: (0..<20).map { 100 + Int32($0) })
            let jobs = (0..<Self.rounds).flatMap { [Job.asyncSpawnExit($0), .subprocessExit($0)] }
            let results = await perform(jobs, width: Self.width)
            return (results, await foundation)
        }

        expectAllPassed(results, expected: ["asyncspawn exit": Self.rounds, "subprocess exit": Self.rounds])
        #expect(foundation == (0..<20).map { 100 + Int32($0) }, "Foundation.Process statuses")
        expectClean(baseline)
    }

    /// AsyncSpawn children torn down by a timeout or by cancellation while
    /// swift-subprocess spawns and reaps its own (and cancels a few long ones):
    /// AsyncSpawn reports the timeout or the cancellation, its short runs keep
    /// their exact status, swift-subprocess keeps its statuses, nothing hangs.
    @Test func timeoutsAndCancellationRaceSubprocessSpawns() async throws {
        let baseline = await warmUp()

        let results = try await withDeadline(Self.deadline, "timeouts and cancellations") {
            var jobs: [Job] = []
            for k in 0..<Self.rounds {
                jobs.append(.subprocessExit(k))
                if k % 5 == 0 { jobs.append(.asyncSpawnTimeout(k)) }        // 40
                if k % 5 == 2 { jobs.append(.asyncSpawnCancelled(k)) }      // 40
                if k % 4 == 1 { jobs.append(.asyncSpawnExit(k)) }           // 50
                if k % 25 == 3 { jobs.append(.subprocessCancelled(k)) }     // 8
            }
            return await perform(jobs, width: Self.width)
        }

        expectAllPassed(results, expected: [
            "subprocess exit": Self.rounds,
            "asyncspawn timeout": Self.rounds / 5,
            "asyncspawn cancelled": Self.rounds / 5,
            "asyncspawn exit": Self.rounds / 4,
            "subprocess cancelled": Self.rounds / 25,
        ])
        expectClean(baseline)
    }
}

// MARK: - Jobs

/// One call of one library, checked on the spot.
enum Job: Sendable {
    /// AsyncSpawn `run` of `sh -c 'echo; echo >&2; exit k'`.
    case asyncSpawnExit(Int)
    /// swift-subprocess `run` of the same, with its own text.
    case subprocessExit(Int)
    /// AsyncSpawn `run` of `sleep 3600` (TestTime.childSleep) with a 200 ms timeout.
    case asyncSpawnTimeout(Int)
    /// AsyncSpawn `withChildProcess` of `sleep 3600`, its task cancelled once the child runs.
    case asyncSpawnCancelled(Int)
    /// swift-subprocess `run` of `sleep 3600`, its task cancelled once the child runs.
    case subprocessCancelled(Int)

    var kind: String {
        switch self {
        case .asyncSpawnExit: "asyncspawn exit"
        case .subprocessExit: "subprocess exit"
        case .asyncSpawnTimeout: "asyncspawn timeout"
        case .asyncSpawnCancelled: "asyncspawn cancelled"
        case .subprocessCancelled: "subprocess cancelled"
        }
    }

    /// The problems found (empty: the call returned exactly what it should).
    func perform() async -> [String] {
        switch self {
        case .asyncSpawnExit(let k): await callAsyncSpawnExit(k)
        case .subprocessExit(let k): await callSubprocessExit(k)
        case .asyncSpawnTimeout(let k): await callAsyncSpawnTimeout(k)
        case .asyncSpawnCancelled(let k): await callAsyncSpawnCancelled(k)
        case .subprocessCancelled(let k): await callSubprocessCancelled(k)
        }
    }
}

let script = #"echo "$1 $0"; echo "$1-err $0" >&2; exit "$0""#

func callAsyncSpawnExit(_ k: Int) async -> [String] {
    let config = AsyncSpawn.Configuration(executable: "/bin/sh", arguments: ["-c", script, "\(k)", "asyncspawn"])
    do {
        let r = try await AsyncSpawn.run(config)
        var issues: [String] = []
        if r.termination != .exited(Int32(k)) || r.outcome != .exited {
            issues.append("asyncspawn \(k): \(r.termination), outcome \(r.outcome) (pid \(r.processID))")
        }
        if r.standardOutputString != "asyncspawn \(k)\n" || r.standardErrorString != "asyncspawn-err \(k)\n" {
            issues.append("asyncspawn \(k): output \(r.standardOutputString.debugDescription), \(r.standardErrorString.debugDescription)")
        }
        return issues
    } catch {
        return ["asyncspawn \(k): \(describe(error))"]
    }
}

func callSubprocessExit(_ k: Int) async -> [String] {
    do {
        let r = try await Subprocess.run(
            .path("/bin/sh"), arguments: ["-c", script, "\(k)", "subprocess"],
            output: .string(limit: 4096), error: .string(limit: 4096)
        )
        var issues: [String] = []
        if r.terminationStatus != .exited(Int32(k)) {
            issues.append("subprocess \(k): \(r.terminationStatus)")
        }
        if r.standardOutput != "subprocess \(k)\n" || r.standardError != "subprocess-err \(k)\n" {
            issues.append("subprocess \(k): output \(String(describing: r.standardOutput)), \(String(describing: r.standardError))")
        }
        return issues
    } catch {
        return ["subprocess \(k): \(error)"]
    }
}

func callAsyncSpawnTimeout(_ k: Int) async -> [String] {
    var config = AsyncSpawn.Configuration(executable: "/bin/sleep", arguments: [TestTime.childSleep])
    config.timeout = .milliseconds(200)
    config.teardown = Teardown(signal: .terminate, grace: .seconds(2))
    do {
        let r = try await AsyncSpawn.run(config)
        guard r.outcome == .timedOut, r.termination == .signaled(.terminate) else {
            return ["asyncspawn timeout \(k): \(r.termination), outcome \(r.outcome)"]
        }
        return childGone(r.processID) ? [] : ["asyncspawn timeout \(k): pid \(r.processID) still our child"]
    } catch {
        return ["asyncspawn timeout \(k): \(describe(error))"]
    }
}

func callAsyncSpawnCancelled(_ k: Int) async -> [String] {
    let (started, startedSignal) = AsyncStream.makeStream(of: Int32.self)
    let task = Task { () async throws -> (ProcessReport, Termination) in
        let (termination, report) = try await withChildProcess(
            AsyncSpawn.Configuration(executable: "/bin/sleep", arguments: [TestTime.childSleep])
        ) { child in
            startedSignal.yield(child.processID)
            startedSignal.finish()
            return try await child.wait()
        }
        return (report, termination)
    }
    var iterator = started.makeAsyncIterator()
    let pid = await iterator.next()
    task.cancel()
    guard let pid else {
        // The body never ran: the spawn itself failed.
        switch await task.result {
        case .success(let (report, _)): return ["asyncspawn cancelled \(k): body never ran, \(report)"]
        case .failure(let error): return ["asyncspawn cancelled \(k): \(describe(error))"]
        }
    }
    var issues: [String] = []
    switch await task.result {
    case .success(let (report, termination)):
        // `sleep 3600` cannot end by itself here: the teardown's SIGTERM ended it.
        if report.outcome != .cancelled || termination != .signaled(.terminate) || report.termination != termination {
            issues.append("asyncspawn cancelled \(k): \(termination), report \(report.termination) \(report.outcome)")
        }
    case .failure(let error) where error is CancellationError:
        break
    case .failure(let error):
        issues.append("asyncspawn cancelled \(k): \(describe(error))")
    }
    if !childGone(pid) { issues.append("asyncspawn cancelled \(k): pid \(pid) still our child") }
    return issues
}

func callSubprocessCancelled(_ k: Int) async -> [String] {
    let (started, startedSignal) = AsyncStream.makeStream(of: Int32.self)
    let task = Task { () async throws -> TerminationStatus in
        let r = try await Subprocess.run(.path("/bin/sleep"), arguments: [TestTime.childSleep], input: .none, output: .discarded, error: .discarded) { execution in
            startedSignal.yield(execution.processIdentifier.value)
            startedSignal.finish()
            // Parks the body until the cancellation (the deadline bounds it).
            try await Task.sleep(for: TestTime.childLifetime)
        }
        return r.terminationStatus
    }
    var iterator = started.makeAsyncIterator()
    let pid = await iterator.next()
    task.cancel()
    let result = await task.result
    guard let pid else { return ["subprocess cancelled \(k): body never ran, \(result)"] }
    var issues: [String] = []
    switch result {
    case .success(let status): issues.append("subprocess cancelled \(k): returned \(status)")
    case .failure(let error) where error is CancellationError: break
    case .failure(let error): issues.append("subprocess cancelled \(k): \(error)")
    }
    if !childGone(pid) { issues.append("subprocess cancelled \(k): pid \(pid) still our child") }
    return issues
}

/// Foundation's Process on a thread of its own, one child after the other.
func foundationRuns(codes: [Int32]) async -> [Int32] {
    await withCheckedContinuation { (c: CheckedContinuation<[Int32], Never>) in
        FoundationThread.shared.submit {
            var statuses: [Int32] = []
            for code in codes {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", "exit \(code)"]
                do {
                    try p.run()
                    p.waitUntilExit()
                    statuses.append(p.terminationStatus)
                } catch {
                    statuses.append(-1)
                }
            }
            c.resume(returning: statuses)
        }
    }
}

/// One thread, started once and never ended, that runs the Foundation jobs:
/// `waitUntilExit` gives a thread a run loop (an epoll, an eventfd and a timerfd)
/// that lives as long as the thread, so a thread per batch would make the
/// descriptor count depend on when those threads finish exiting.
final class FoundationThread: @unchecked Sendable {
    static let shared = FoundationThread()
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.start()
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.withLock {
            jobs.append(job)
            condition.signal()
        }
    }
}

func describe(_ error: any Error) -> String {
    if let e = error as? SpawnError { return "SpawnError.\(e.code): \(e)" }
    return "\(type(of: error)): \(error)"
}

/// Runs `jobs` with at most `width` in flight; returns each job's kind and problems.
func perform(_ jobs: [Job], width: Int) async -> [(kind: String, issues: [String])] {
    await withTaskGroup(of: (kind: String, issues: [String]).self) { group in
        var results: [(kind: String, issues: [String])] = []
        for (i, job) in jobs.enumerated() {
            if i >= width, let r = await group.next() { results.append(r) }
            group.addTask { (job.kind, await job.perform()) }
        }
        for await r in group { results.append(r) }
        return results
    }
}

func expectAllPassed(
    _ results: [(kind: String, issues: [String])], expected: [String: Int],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var counts: [String: Int] = [:]
    for r in results { counts[r.kind, default: 0] += 1 }
    #expect(counts == expected, "calls that returned, by kind", sourceLocation: sourceLocation)
    let issues = results.flatMap(\.issues)
    let lost = issues.filter { $0.contains("statusLost") }
    #expect(lost.isEmpty, "statuses lost: \(lost)", sourceLocation: sourceLocation)
    #expect(issues.isEmpty, "\(issues.count) problems: \(issues.prefix(20).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
}

// MARK: - The process: children and descriptors

/// Starts each library once (their threads and their epoll, eventfd and
/// similar descriptors live for the rest of the process), then returns this
/// process's descriptors.
func warmUp() async -> [Int32: String] {
    _ = await callAsyncSpawnExit(1)
    _ = await callSubprocessExit(1)
    _ = await foundationRuns(codes: [0])
    return openDescriptors()
}

/// No child of ours is left (zombie or running), and the descriptors are the
/// ones of `baseline`, exactly, sockets aside: Foundation's Process closes the
/// socketpair it watches each child with on its manager thread, after
/// `waitUntilExit` has returned, so one may still be open (or gone) at either
/// measurement. Neither AsyncSpawn nor swift-subprocess opens sockets.
func expectClean(_ baseline: [Int32: String], sourceLocation: SourceLocation = #_sourceLocation) {
    let children = childrenOfThisProcess()
    #expect(children.filter { $0.state == "Z" }.isEmpty, "zombie children: \(children)", sourceLocation: sourceLocation)
    #expect(children.isEmpty, "children left: \(children)", sourceLocation: sourceLocation)
    let isSocket: (Dictionary<Int32, String>.Element) -> Bool = { $0.value.hasPrefix("socket:") }
    let before = baseline.filter { !isSocket($0) }
    // The peers close some descriptors on threads of their own after their calls
    // returned (Foundation's manager thread, swift-subprocess's monitor thread):
    // give those until TestTime.hang (the wait ends as soon as they have) to reach
    // the baseline before judging. AsyncSpawn closes everything before its call
    // returns.
    var now = openDescriptors().filter { !isSocket($0) }
    let until = ContinuousClock.now + TestTime.hang
    while now != before && ContinuousClock.now < until {
        usleep(10_000)
        now = openDescriptors().filter { !isSocket($0) }
    }
    let added = now.filter { before[$0.key] != $0.value }.sorted { $0.key < $1.key }
    let removed = before.filter { now[$0.key] != $0.value }.sorted { $0.key < $1.key }
    #expect(added.isEmpty && removed.isEmpty,
            "descriptors (sockets aside) \(before.count) -> \(now.count); new: \(added); gone: \(removed)",
            sourceLocation: sourceLocation)
}

/// Direct children of this process: pid and state letter from /proc/PID/stat.
/// (Orphans of our children go to PID 1 and are not counted.)
func childrenOfThisProcess() -> [(pid: Int32, state: Character)] {
    let me = getpid()
    var result: [(pid: Int32, state: Character)] = []
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(name), pid != me, let (state, parent) = procStat(pid), parent == me else { continue }
        result.append((pid, state))
    }
    return result
}

/// State letter and parent pid of /proc/PID/stat; nil once the process is reaped.
func procStat(_ pid: Int32) -> (state: Character, parent: Int32)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")")
    else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 1, let state = fields[0].first, let parent = Int32(fields[1]) else { return nil }
    return (state, parent)
}

/// True when `pid` is no longer a child of ours: reaped (or the pid reused by
/// someone else's process).
func childGone(_ pid: Int32) -> Bool {
    guard let (_, parent) = procStat(pid) else { return true }
    return parent != getpid()
}

/// This process's open descriptors and what they point to (without the one
/// used to list them).
func openDescriptors() -> [Int32: String] {
    var result: [Int32: String] = [:]
    guard let dir = opendir("/proc/self/fd") else { return [:] }
    defer { closedir(dir) }
    let own = dirfd(dir)
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        guard let fd = Int32(name), fd != own else { continue }
        var buffer = [CChar](repeating: 0, count: 512)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, 511)
        result[fd] = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
    return result
}

// MARK: - A deadline

struct DeadlineExceeded: Error, CustomStringConvertible {
    let what: String
    let limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Returns `body`'s result, or throws ``DeadlineExceeded`` after `limit`
/// (cancelling `body` but not waiting for it, so a hung body cannot hang the test).
func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, timer: Task<Void, Never>?)>((nil, nil))
    let finish: @Sendable (Result<T, any Error>) -> Void = { result in
        let (c, timer) = state.withLock { s in
            defer { s = (nil, nil) }
            return (s.continuation, s.timer)
        }
        timer?.cancel()
        c?.resume(with: result)
    }
    return try await withCheckedThrowingContinuation { continuation in
        state.withLock { $0.continuation = continuation }
        let work = Task {
            do { finish(.success(try await body())) } catch { finish(.failure(error)) }
        }
        let timer = Task {
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            work.cancel()
            finish(.failure(DeadlineExceeded(what: what, limit: limit)))
        }
        let done = state.withLock { s -> Bool in
            if s.continuation == nil { return true }
            s.timer = timer
            return false
        }
        if done { timer.cancel() }
    }
}
