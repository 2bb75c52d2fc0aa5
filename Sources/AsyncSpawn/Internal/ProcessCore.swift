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
///
/// The life of a child after its start runs on the reactor thread, with no task
/// of its own: the reap calls ``exited(_:)``, which cleans up the group (one
/// `kill` that usually finds it empty; else a poll on reactor timers until the
/// grace runs out, then SIGKILL), arms the drain deadline when pipes are still
/// open, and only then resumes the tasks waiting for the child ("settled").
///
/// A core exists from just before the spawn: ``run(_:input:)`` hands the spawn
/// to the reactor and reads the pipes at once, without waiting for the child to
/// exist (a thread hop less per run). Until ``spawned(pid:pidfd:)`` the ids are
/// -1 and a teardown is only recorded; ``spawnFailed(_:)`` settles it with the
/// error that ``report()`` then throws.
final class ProcessCore: Sendable {
    /// The child's pid, -1 until it exists.
    var pid: Int32 { state.withLock { $0.pid } }
    /// The process group to signal, or nil when the child stayed in ours (or
    /// does not exist yet).
    var group: Int32? {
        let pid = self.pid
        return ownGroup && pid > 0 ? pid : nil
    }
    let ownGroup: Bool
    let teardown: Teardown
    let tearDownGroupOnExit: Bool
    let drainTimeout: Duration
    let cpuSoftLimitSeconds: UInt64?
    let hasFilter: Bool
    let started: ContinuousClock.Instant

    private struct State {
        var pid: Int32 = -1
        var pidfd: Int32 = -1
        var spawnError: SpawnError?
        /// A teardown asked for before the child existed.
        var teardownPending = false
        var exit: ExitResult?
        var exitTime: ContinuousClock.Instant?
        /// The child is reaped and its group cleaned up.
        var settled = false
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var reason: TeardownReason?
        var teardownStarted = false
        var timeoutTimer: UInt64?
        var drainTimer: UInt64?
        var drained = false
        var streams: [PipeEnd] = []
        var pidfdClosed = false
        /// The child has ended and is about to be reaped: its group id may be
        /// freed any moment, so nothing signals the group by id any more.
        var reaping = false
        /// Kills the child while it is still inside `clone` (Spawner.abort).
        var abortSpawn: (@Sendable () -> Void)?
    }

    private let state: Locked<State>

    init(configuration: Configuration, cpuSoftLimitSeconds: UInt64?, started: ContinuousClock.Instant,
         streams: [PipeEnd]) {
        self.ownGroup = configuration.processGroup != .inherit
        self.teardown = configuration.teardown
        self.tearDownGroupOnExit = configuration.tearDownGroupOnExit
        self.drainTimeout = configuration.drainTimeout
        self.cpuSoftLimitSeconds = cpuSoftLimitSeconds
        self.hasFilter = configuration.seccomp != nil || configuration.seccompProgram != nil
        self.started = started
        self.state = Locked(State(streams: streams))
    }

    /// Called once, on the reactor thread, when the child exists (before its
    /// exit can be seen): records its ids and starts a teardown asked for before.
    func spawned(pid: Int32, pidfd: Int32) {
        let pending = state.withLock { s -> Bool in
            s.pid = pid
            s.pidfd = pidfd
            return s.teardownPending
        }
        if pending { fireTeardown() }
    }

    /// Called once, on the reactor thread, when the spawn failed: settles the
    /// core with the error (``report()`` throws it; the streams are at their end).
    func spawnFailed(_ error: SpawnError) {
        state.withLock {
            $0.spawnError = error
            $0.exitTime = ContinuousClock.now
        }
        settle()
    }

    /// The spawn's error, once the spawn has failed.
    var spawnError: SpawnError? { state.withLock { $0.spawnError } }

    /// Called once, on the reactor thread, when the child has been reaped:
    /// cleans up the group, arms the drain deadline, then settles.
    func exited(_ result: ExitResult) {
        let now = ContinuousClock.now
        let (timeout, tornDown) = state.withLock { s -> (UInt64?, Bool) in
            s.exit = result
            s.exitTime = now
            let t = s.timeoutTimer
            s.timeoutTimer = nil
            return (t, s.reason != nil)
        }
        if let timeout { Reactor.shared.cancelTimer(timeout) }
        if let group, tearDownGroupOnExit || tornDown,
           cspawn_signal_group(group, teardown.signal.rawValue) == 0 {
            // Something is left in the group (or only zombies that init has not
            // reaped yet): give it the grace, then SIGKILL.
            if teardown.signal != .kill { _ = cspawn_signal_group(group, SIGCONT) }
            // A grace of Reactor.never or more never escalates.
            let deadline = teardown.grace < Reactor.never ? now + teardown.grace : nil
            pollGroup(group, deadline: deadline, pause: .milliseconds(1))
            return
        }
        settle()
    }

    /// One step of the group's grace, on a reactor timer.
    private func pollGroup(_ group: Int32, deadline: ContinuousClock.Instant?, pause: Duration) {
        Reactor.shared.schedule(after: pause) { [self] in
            if cspawn_group_has_live_members(group) == 0 {
                Self.reapOrphans(of: group)
                self.settle()
            } else if let deadline, ContinuousClock.now >= deadline {
                _ = cspawn_signal_group(group, SIGKILL)
                Self.reapOrphans(of: group)
                self.settle()
            } else {
                self.pollGroup(group, deadline: deadline, pause: min(pause * 2, .milliseconds(50)))
            }
        }
    }

    /// Members of the child's group can be children of this process: orphans
    /// reparented to it when it is a child subreaper or PID 1, and processes the
    /// child made with `clone(CLONE_PARENT)` (a run without a filter that refuses
    /// it). Their zombies would stay forever (nothing else here waits for them)
    /// and count against their uid's RLIMIT_NPROC: reap those of the group, now
    /// and on reactor timers until the group is gone (at most a second). Only
    /// zombies whose parent is this process and whose group is the child's:
    /// descendants of the child, no other code's children.
    static func reapOrphans(of group: Int32, attempt: Int = 0) {
        let remaining = cspawn_reap_group_orphans(group)
        guard remaining > 0, attempt < 100 else { return }
        Reactor.shared.schedule(after: .milliseconds(10)) { reapOrphans(of: group, attempt: attempt + 1) }
    }

    /// The child and its group are done: arm the drain deadline for pipes still
    /// open (held by a process that escaped the group), then wake the waiters.
    private func settle() {
        let streams = state.withLock { $0.streams }
        if streams.contains(where: { !$0.isClosed }) {
            let id = Reactor.shared.schedule(after: drainTimeout) { [self] in self.drain() }
            let cancel = state.withLock { s -> Bool in
                if s.pidfdClosed { return true }
                s.drainTimer = id
                return false
            }
            if cancel { Reactor.shared.cancelTimer(id) }
        }
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.settled = true
            let w = Array(s.waiters.values)
            s.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume(returning: true) }
    }

    /// The drain deadline: streams still open end instead of waiting forever.
    private func drain() {
        let pipes = state.withLock { s -> [PipeEnd] in
            s.drained = true
            s.drainTimer = nil
            let p = s.streams
            s.streams = []
            return p
        }
        for pipe in pipes { pipe.abortWait() }
    }

    var hasExited: Bool { state.withLock { $0.exit != nil } }

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

    /// Suspends until the child has been reaped and its group cleaned up.
    /// Returns false if the task was cancelled first (only when `cancellable`).
    func waitSettled(cancellable: Bool) async -> Bool {
        if state.withLock({ $0.settled }) { return true }
        let id = state.withLock { s -> UInt64 in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        @Sendable func suspend(_ c: CheckedContinuation<Bool, Never>) {
            let resumeNow: Bool? = state.withLock { s in
                if s.settled { return true }
                if cancellable && Task.isCancelled { return false }
                s.waiters[id] = c
                return nil
            }
            if let resumeNow { c.resume(returning: resumeNow) }
        }
        guard cancellable else { return await withCheckedContinuation(suspend) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation(suspend)
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id) }
            c?.resume(returning: false)
        }
    }

    /// Sends a signal to the child alone (by pidfd where there is one).
    func signalChild(_ signal: Signal) -> Int32 {
        let (pid, pidfd, gone) = state.withLock { s in
            (s.pid, s.pidfd, s.pid < 0 || s.pidfdClosed || (s.exit != nil && s.pidfd < 0))
        }
        if gone { return -ESRCH }
        return cspawn_signal(pid, pidfd, signal.rawValue)
    }

    /// On the reactor thread, once the child has ended and just before it is
    /// reaped: from here on the group is not signalled by its id (which the
    /// zombie holds until then), see ``signalGroup(_:)``.
    func willReap() {
        state.withLock { $0.reaping = true }
    }

    /// Sends `signal` to the child's group, by its id, only while the child (the
    /// group's leader) is unreaped: the id cannot have been freed and reused by
    /// an unrelated group then. The lock is held across the `kill`, and
    /// ``willReap()`` takes it before the reap. Returns 0, or -errno (`ESRCH`
    /// once the child has been reaped).
    func signalGroup(_ signal: Signal) -> Int32 {
        guard ownGroup else { return -EINVAL }
        return state.withLock { s -> Int32 in
            if s.pid < 0 || s.reaping || s.exit != nil { return -ESRCH }
            return cspawn_signal_group(s.pid, signal.rawValue)
        }
    }

    /// Sends a signal to the child's group and to the child itself (through its
    /// pidfd, when it has left the group: a child that `setpgid`s itself into
    /// another group must still end), or to the child alone without a group.
    private func signalTarget(_ signal: Signal) {
        guard ownGroup else {
            _ = signalChild(signal)
            return
        }
        _ = signalGroup(signal)
        // After the group's signal: a child still in the group has it already; one
        // that left before is found here (one that leaves later had it too).
        let (pid, left) = state.withLock { s in (s.pid, s.pid > 0 && s.exit == nil && !s.reaping) }
        if left && getpgid(pid) != pid { _ = signalChild(signal) }
    }

    /// Starts the teardown, once: the first signal (and SIGCONT, so a stopped
    /// group can act on it) to the group now, from the calling thread, and SIGKILL
    /// after the grace from a reactor timer. Nothing here needs Swift's
    /// cooperative pool, so a blocked pool cannot delay it. `reason` is recorded
    /// only if the child is still running (or, for the output limit, always).
    func beginTeardown(_ reason: TeardownReason) {
        var abort: (@Sendable () -> Void)?
        let start = state.withLock { s -> Bool in
            // A stream past the output limit is the outcome even when the child
            // exited meanwhile; the other reasons count only if they ended it.
            if s.reason == nil && (s.exit == nil || reason == .outputLimit) { s.reason = reason }
            if s.exit != nil || s.teardownStarted || s.spawnError != nil { return false }
            if s.pid < 0 {
                s.teardownPending = true  // fired by spawned(pid:pidfd:)
                abort = s.abortSpawn
                return false
            }
            s.teardownStarted = true
            return true
        }
        if start { signalTeardown() }
        // Before the child exists: if it is stuck before its exec, kill it there.
        abort?()
    }

    /// Set once, before the spawn is handed on: ends a child still inside
    /// `clone` when the run is torn down before the child's exec.
    func setAbortSpawn(_ abort: @escaping @Sendable () -> Void) {
        state.withLock { $0.abortSpawn = abort }
    }

    /// A teardown was asked for before the child existed (cancellation,
    /// termination, a timeout).
    var teardownRequested: Bool { state.withLock { $0.teardownPending } }

    /// A teardown recorded before the child existed, started now that it does.
    private func fireTeardown() {
        let start = state.withLock { s -> Bool in
            if s.exit != nil || s.teardownStarted { return false }
            s.teardownStarted = true
            return true
        }
        if start { signalTeardown() }
    }

    private func signalTeardown() {
        signalTarget(teardown.signal)
        guard teardown.signal != .kill else { return }
        signalTarget(.continue)
        Reactor.shared.schedule(after: teardown.grace) { [self] in
            if !self.hasExited { self.signalTarget(.kill) }
        }
    }

    /// Starts the teardown and waits for the child to settle, even when the
    /// calling task is cancelled.
    func tearDownAndWait(_ reason: TeardownReason) async {
        beginTeardown(reason)
        _ = await waitSettled(cancellable: false)
    }

    /// Closes the pidfd (after this the child cannot be signalled) and cancels
    /// the drain deadline (the streams are closed with it).
    func close() {
        let (fd, drainTimer) = state.withLock { s -> (Int32, UInt64?) in
            let t = s.drainTimer
            s.drainTimer = nil
            if s.pidfdClosed { return (-1, t) }
            s.pidfdClosed = true
            return (s.pidfd, t)
        }
        if let drainTimer { Reactor.shared.cancelTimer(drainTimer) }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// The report of the reaped child. Throws ``SpawnError/Code/statusLost`` when
    /// someone else reaped it.
    func report() throws(SpawnError) -> ProcessReport {
        let (exit, exitTime, reason, spawnError, pid) = state.withLock {
            ($0.exit, $0.exitTime, $0.reason, $0.spawnError, $0.pid)
        }
        if let spawnError { throw spawnError }
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
