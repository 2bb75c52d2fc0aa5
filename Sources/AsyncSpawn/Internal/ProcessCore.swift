import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why AsyncSpawn ended a child (the first reason wins).
enum TeardownReason: Sendable {
    case timeout, outputLimit, cancelled, terminated
}

/// The shared state of one child: its exit, the teardown, the group cleanup and
/// the drain deadline. Every method is safe from any task or thread.
final class ProcessCore: Sendable {
    let pid: Int32
    let pidfd: Int32
    /// The process group to signal, or nil when the child stayed in ours.
    let group: Int32?
    let teardown: Teardown
    let tearDownGroupOnExit: Bool
    let drainTimeout: Duration
    let cpuSoftLimitSeconds: UInt64?
    let hasFilter: Bool
    let started: ContinuousClock.Instant

    private struct State {
        var exit: ExitResult?
        var exitTime: ContinuousClock.Instant?
        var exitWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var reason: TeardownReason?
        var teardownStarted = false
        var groupTask: Task<Void, Never>?
        var timeoutTimer: UInt64?
        var drained = false
        var streams: [PipeEnd] = []
        var pidfdClosed = false
    }

    private let state = Locked(State())

    init(pid: Int32, pidfd: Int32, group: Int32?, configuration: Configuration,
         cpuSoftLimitSeconds: UInt64?, started: ContinuousClock.Instant) {
        self.pid = pid
        self.pidfd = pidfd
        self.group = group
        self.teardown = configuration.teardown
        self.tearDownGroupOnExit = configuration.tearDownGroupOnExit
        self.drainTimeout = configuration.drainTimeout
        self.cpuSoftLimitSeconds = cpuSoftLimitSeconds
        self.hasFilter = configuration.seccomp != nil || configuration.seccompProgram != nil
        self.started = started
    }

    /// Called once, on the reactor thread, when the child has been reaped.
    func exited(_ result: ExitResult) {
        let now = ContinuousClock.now
        let (waiters, timeout) = state.withLock { s -> ([CheckedContinuation<Bool, Never>], UInt64?) in
            s.exit = result
            s.exitTime = now
            let w = Array(s.exitWaiters.values)
            s.exitWaiters.removeAll()
            let t = s.timeoutTimer
            s.timeoutTimer = nil
            return (w, t)
        }
        if let timeout { Reactor.shared.cancelTimer(timeout) }
        for w in waiters { w.resume(returning: true) }
        // Clean up the group and arm the drain deadline now, not when someone
        // awaits the report: a body that only reads the streams must see them end.
        Task { await self.finishAfterExit() }
    }

    var hasExited: Bool { state.withLock { $0.exit != nil } }

    var exitResult: ExitResult? { state.withLock { $0.exit } }

    var isDrained: Bool { state.withLock { $0.drained } }

    /// Arms the wall-clock timeout on the reactor thread.
    func armTimeout(_ timeout: Duration) {
        let id = Reactor.shared.schedule(after: timeout) { [self] in self.beginTeardown(.timeout) }
        let cancelNow = state.withLock { s -> Bool in
            if s.exit != nil { return true }
            s.timeoutTimer = id
            return false
        }
        if cancelNow { Reactor.shared.cancelTimer(id) }
    }

    func registerStream(_ pipe: PipeEnd) {
        state.withLock { $0.streams.append(pipe) }
    }

    /// Suspends until the child has been reaped. Returns false if the task was
    /// cancelled first.
    func waitExit() async -> Bool {
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let resumeNow: Bool? = state.withLock { s in
                    if s.exit != nil { return true }
                    if Task.isCancelled { return false }
                    s.exitWaiters[id] = c
                    return nil
                }
                if let resumeNow { c.resume(returning: resumeNow) }
            }
        } onCancel: {
            let c = state.withLock { $0.exitWaiters.removeValue(forKey: id) }
            c?.resume(returning: false)
        }
    }

    /// Sends a signal to the child alone (by pidfd where there is one).
    func signalChild(_ signal: Signal) -> Int32 {
        let closed = state.withLock { $0.pidfdClosed || ($0.exit != nil && pidfd < 0) }
        if closed { return -ESRCH }
        return cspawn_signal(pid, pidfd, signal.rawValue)
    }

    /// Sends a signal to the child's group, or to the child alone without one.
    private func signalTarget(_ signal: Signal) {
        if let group {
            _ = cspawn_signal_group(group, signal.rawValue)
        } else {
            _ = signalChild(signal)
        }
    }

    /// Starts the teardown, once: the first signal (and SIGCONT, so a stopped
    /// group can act on it) to the group now, from the calling thread, and SIGKILL
    /// after the grace from a reactor timer. Nothing here needs Swift's
    /// cooperative pool, so a blocked pool cannot delay it. `reason` is recorded
    /// only if the child is still running (or, for the output limit, always).
    func beginTeardown(_ reason: TeardownReason) {
        let start = state.withLock { s -> Bool in
            // A stream past the output limit is the outcome even when the child
            // exited meanwhile; the other reasons count only if they ended it.
            if s.reason == nil && (s.exit == nil || reason == .outputLimit) { s.reason = reason }
            if s.exit != nil || s.teardownStarted { return false }
            s.teardownStarted = true
            return true
        }
        guard start else { return }
        signalTarget(teardown.signal)
        guard teardown.signal != .kill else { return }
        signalTarget(.continue)
        Reactor.shared.schedule(after: teardown.grace) { [self] in
            if !self.hasExited { self.signalTarget(.kill) }
        }
    }

    /// Starts the teardown and waits for the child to be reaped, even when the
    /// calling task is cancelled.
    func tearDownAndWait(_ reason: TeardownReason) async {
        beginTeardown(reason)
        await Task { _ = await self.waitExit() }.value
    }

    /// After the exit: tears down what the child left in its group, then arms the
    /// drain deadline. Idempotent; every caller awaits the same work.
    func finishAfterExit() async {
        _ = await waitExit()
        let task = state.withLock { s -> Task<Void, Never> in
            if let t = s.groupTask { return t }
            let t = Task { await self.runGroupCleanup() }
            s.groupTask = t
            return t
        }
        await task.value
    }

    private func runGroupCleanup() async {
        let tornDown = state.withLock { $0.reason != nil }
        if let group, tearDownGroupOnExit || tornDown {
            var r = cspawn_signal_group(group, teardown.signal.rawValue)
            if r == 0 {
                if teardown.signal != .kill { _ = cspawn_signal_group(group, SIGCONT) }
                let deadline = ContinuousClock.now + teardown.grace
                var pause = Duration.milliseconds(1)
                while ContinuousClock.now < deadline {
                    try? await Task.sleep(for: pause)
                    if cspawn_group_has_live_members(group) == 0 { r = -ESRCH; break }
                    pause = min(pause * 2, .milliseconds(50))
                }
                if r == 0 { _ = cspawn_signal_group(group, SIGKILL) }
            }
        }
        // The drain deadline: streams still open after it (held by a process that
        // escaped the group) end instead of waiting forever.
        let drain = drainTimeout
        Task {
            try? await Task.sleep(for: drain)
            let pipes = self.state.withLock { s -> [PipeEnd] in
                s.drained = true
                let p = s.streams
                s.streams = []
                return p
            }
            for pipe in pipes { pipe.abortWait() }
        }
    }

    /// Closes the pidfd; after this the child cannot be signalled.
    func close() {
        let fd = state.withLock { s -> Int32 in
            if s.pidfdClosed || pidfd < 0 { return -1 }
            s.pidfdClosed = true
            return pidfd
        }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// The report of the reaped child. Throws ``SpawnError/Code/statusLost`` when
    /// someone else reaped it.
    func report() throws(SpawnError) -> ProcessReport {
        let (exit, exitTime, reason) = state.withLock { ($0.exit, $0.exitTime, $0.reason) }
        guard let exit, let exitTime else {
            throw SpawnError(code: .io, message: "the child has not exited")
        }
        switch exit {
        case .failed(let e):
            throw SpawnError(code: .statusLost, step: "wait", errno: e,
                             message: "wait: the exit status of pid \(pid) was taken by another waiter "
                                 + "(\(SpawnError.describe(errno: e)), errno \(e))")
        case .reaped(let info):
            let usage = ResourceUsage(
                wallTime: exitTime - started,
                userTime: .microseconds(info.userMicroseconds),
                systemTime: .microseconds(info.systemMicroseconds),
                maxResidentSetKiB: Int(info.maxRSSKiB))
            return ProcessReport(processID: pid, termination: info.termination,
                                 outcome: classify(info.termination, usage: usage, reason: reason),
                                 usage: usage)
        }
    }

    private func classify(_ termination: Termination, usage: ResourceUsage, reason: TeardownReason?) -> Outcome {
        switch reason {
        case .timeout: return .timedOut
        case .outputLimit: return .outputLimit
        case .cancelled: return .cancelled
        case .terminated, nil: break
        }
        guard case .signaled(let signal) = termination else { return .exited }
        switch signal {
        case .cpuLimitExceeded: return .cpuLimit
        case .fileSizeLimitExceeded: return .fileSizeLimit
        case .badSystemCall where hasFilter: return .seccompViolation
        case .kill:
            // SIGKILL while a CPU limit was set: the kernel sends it at the hard
            // limit. rusage is tick-sampled and, on a loaded (virtual) machine,
            // has read as low as 84 % of the limit for such a child; an unrelated
            // SIGKILL (OOM killer, a user) rarely comes after half of it. So the
            // child counts as killed by the limit once it used half of it.
            if let limit = cpuSoftLimitSeconds, limit < UInt64.max {
                let cpu = usage.userTime + usage.systemTime
                if cpu * 2 >= .seconds(Int64(clamping: limit)) { return .cpuLimit }
            }
            return .signaled
        default: return .signaled
        }
    }
}
