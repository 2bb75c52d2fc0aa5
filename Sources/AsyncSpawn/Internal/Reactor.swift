import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the kernel reported for a reaped child, or why no status could be had.
struct ExitInfo: Sendable {
    var termination: Termination
    var userMicroseconds: Int64
    var systemMicroseconds: Int64
    var maxRSSKiB: Int64
}

enum ExitResult: Sendable {
    case reaped(ExitInfo)
    /// waitid failed: ECHILD means another waiter reaped the child.
    case failed(Int32)
}

/// The one background thread that serves every child: it owns an epoll set of
/// pidfds and pipe descriptors, reaps children as their pidfds fire, and runs
/// spawns (so every child is created from a thread that never exits, which
/// `PR_SET_PDEATHSIG` requires). No thread per child; the cooperative pool never
/// blocks on a descriptor: tasks suspend on a continuation that this thread resumes.
final class Reactor: Sendable {
    private static let instance = Locked<Reactor?>(nil)

    /// The reactor, started on first use. Throws (instead of crashing) when it
    /// cannot be started, e.g. with no descriptor or thread left; a later call
    /// tries again.
    static func start() throws(SpawnError) -> Reactor {
        let result = instance.withLock { (slot: inout Reactor?) -> Result<Reactor, SpawnError> in
            if let reactor = slot { return .success(reactor) }
            do throws(SpawnError) {
                let reactor = try Reactor()
                slot = reactor
                return .success(reactor)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The reactor; only used once a child exists, so it has been started.
    static var shared: Reactor {
        // swiftlint:disable:next force_try
        try! start()
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct ExitWatch {
        var pid: Int32
        var pidfd: Int32
        var handler: @Sendable (ExitResult) -> Void
    }

    private struct State {
        var waiters: [Int32: Waiter] = [:]
        var exitWatches: [Int32: ExitWatch] = [:]  // by pidfd
        var polled: [Int32: ExitWatch] = [:]  // by pid, where pidfds are unavailable
        var jobs: [@Sendable () -> Void] = []
        var timers: [UInt64: Timer] = [:]
        /// Aborts that found no waiter: the next wait on that fd returns false at
        /// once (closes the window between a caller's check and its registration).
        var aborted: Set<Int32> = []
        var nextID: UInt64 = 1
    }

    private struct Timer {
        var deadline: ContinuousClock.Instant
        var body: @Sendable () -> Void
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    private let state = Locked(State())

    private init() throws(SpawnError) {
        cspawn_ignore_sigpipe()
        let ep = cspawn_epoll_create()
        if ep < 0 { throw SpawnError.system("reactor: epoll_create1", -ep) }
        let wake = cspawn_eventfd()
        if wake < 0 {
            close(ep)
            throw SpawnError.system("reactor: eventfd", -wake)
        }
        epollFD = ep
        wakeFD = wake
        _ = cspawn_epoll_arm(epollFD, wakeFD, 0)
        let box = Unmanaged.passRetained(ThreadStart { [self] in self.loop() })
        var thread = pthread_t()
        let r = pthread_create(&thread, nil, { raw in
            let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            start.body()
            return nil
        }, box.toOpaque())
        if r != 0 {
            box.release()
            close(ep)
            close(wake)
            throw SpawnError.system("reactor: pthread_create", r)
        }
        pthread_detach(thread)
    }

    // MARK: The thread

    private func loop() {
        cspawn_block_all_signals_in_thread()
        cspawn_name_thread("asyncspawn")
        var fds = [Int32](repeating: -1, count: 64)
        while true {
            let timeout: Int32 = state.withLock { s -> Int32 in
                var t: Int32 = s.polled.isEmpty ? -1 : 10
                if let next = s.timers.values.map(\.deadline).min() {
                    let (sec, atto) = (next - ContinuousClock.now).components
                    // Round up so a timer never fires early; at least 0.
                    let ms = max(0, sec * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000)
                    let capped = Int32(clamping: ms)
                    t = t < 0 ? capped : min(t, capped)
                }
                return t
            }
            let n = fds.withUnsafeMutableBufferPointer {
                cspawn_epoll_wait(epollFD, $0.baseAddress, 64, timeout)
            }
            if n < 0 { continue }
            for i in 0..<Int(n) {
                let fd = fds[i]
                if fd == wakeFD {
                    cspawn_eventfd_drain(wakeFD)
                    _ = cspawn_epoll_arm(epollFD, wakeFD, 0)
                    let jobs = state.withLock { s -> [@Sendable () -> Void] in
                        let j = s.jobs
                        s.jobs.removeAll()
                        return j
                    }
                    for job in jobs { job() }
                    continue
                }
                if let watch = state.withLock({ $0.exitWatches[fd] }) {
                    reap(watch, rearm: true)
                    continue
                }
                let waiter = state.withLock { $0.waiters.removeValue(forKey: fd) }
                waiter?.continuation.resume(returning: true)
            }
            let polled = state.withLock { Array($0.polled.values) }
            for watch in polled { reap(watch, rearm: false) }
            let now = ContinuousClock.now
            let due = state.withLock { s -> [@Sendable () -> Void] in
                let ids = s.timers.filter { $0.value.deadline <= now }.map(\.key)
                return ids.compactMap { s.timers.removeValue(forKey: $0)?.body }
            }
            for body in due { body() }
        }
    }

    private func reap(_ watch: ExitWatch, rearm: Bool) {
        var code: Int32 = 0, status: Int32 = 0
        var user: Int64 = 0, system: Int64 = 0, rss: Int64 = 0
        let r = cspawn_wait(watch.pid, watch.pidfd, 1, &code, &status, &user, &system, &rss)
        if r == 0 {
            if rearm { _ = cspawn_epoll_arm(epollFD, watch.pidfd, 0) }
            return
        }
        let result: ExitResult
        if r < 0 {
            result = .failed(errno)
        } else {
            let termination: Termination = code == CLD_EXITED ? .exited(status) : .signaled(Signal(rawValue: status))
            result = .reaped(ExitInfo(termination: termination, userMicroseconds: user,
                                      systemMicroseconds: system, maxRSSKiB: rss))
        }
        state.withLock {
            if watch.pidfd >= 0 { $0.exitWatches[watch.pidfd] = nil } else { $0.polled[watch.pid] = nil }
        }
        if watch.pidfd >= 0 { _ = cspawn_epoll_forget(epollFD, watch.pidfd) }
        watch.handler(result)
    }

    // MARK: API

    /// Runs `body` on the reactor thread and returns its result.
    func perform<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            state.withLock { $0.jobs.append { continuation.resume(returning: body()) } }
            cspawn_eventfd_signal(wakeFD)
        }
    }

    /// Runs `body` on the reactor thread after `delay`, independently of Swift's
    /// cooperative pool (a server that blocks its pool must not delay a timeout).
    /// Returns an id for ``cancelTimer(_:)``.
    @discardableResult
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> UInt64 {
        let deadline = ContinuousClock.now + delay
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            s.timers[s.nextID] = Timer(deadline: deadline, body: body)
            return s.nextID
        }
        cspawn_eventfd_signal(wakeFD)  // recompute the epoll timeout
        return id
    }

    /// Cancels a timer that has not fired yet.
    func cancelTimer(_ id: UInt64) {
        state.withLock { _ = $0.timers.removeValue(forKey: id) }
    }

    /// Calls `handler` on the reactor thread once the child has exited and been
    /// reaped (by pidfd when there is one, else by polling `waitid(P_PID, WNOHANG)`).
    func watchExit(pid: Int32, pidfd: Int32, handler: @escaping @Sendable (ExitResult) -> Void) {
        let watch = ExitWatch(pid: pid, pidfd: pidfd, handler: handler)
        state.withLock {
            if pidfd >= 0 { $0.exitWatches[pidfd] = watch } else { $0.polled[pid] = watch }
        }
        if pidfd >= 0 {
            _ = cspawn_epoll_arm(epollFD, pidfd, 0)
        } else {
            cspawn_eventfd_signal(wakeFD)  // switch the loop to its polling timeout
        }
    }

    /// Suspends until `fd` is readable (or writable). Returns false when the wait
    /// was aborted (``abortWait(fd:)``) or the task was cancelled.
    func waitReady(fd: Int32, writable: Bool) async -> Bool {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let cancelled = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    if s.aborted.remove(fd) != nil { return true }
                    if let old = s.waiters[fd] { old.continuation.resume(returning: false) }
                    s.waiters[fd] = Waiter(id: id, continuation: continuation)
                    return false
                }
                if cancelled {
                    continuation.resume(returning: false)
                    return
                }
                let r = cspawn_epoll_arm(epollFD, fd, writable ? 1 : 0)
                if r < 0 {
                    // Not pollable any more (closed): report ready so the caller's
                    // next read or write sees the real error.
                    let w = state.withLock { s -> Waiter? in
                        guard s.waiters[fd]?.id == id else { return nil }
                        return s.waiters.removeValue(forKey: fd)
                    }
                    w?.continuation.resume(returning: true)
                }
            }
        } onCancel: {
            let w = state.withLock { s -> Waiter? in
                guard s.waiters[fd]?.id == id else { return nil }
                return s.waiters.removeValue(forKey: fd)
            }
            w?.continuation.resume(returning: false)
        }
    }

    /// Ends a pending ``waitReady(fd:writable:)`` on `fd` with false.
    func abortWait(fd: Int32) {
        let w = state.withLock { s -> Waiter? in
            guard let w = s.waiters.removeValue(forKey: fd) else {
                s.aborted.insert(fd)
                return nil
            }
            return w
        }
        w?.continuation.resume(returning: false)
    }

    /// Removes `fd` from the epoll set; call before closing it.
    func forget(fd: Int32) {
        _ = cspawn_epoll_forget(epollFD, fd)
        let w = state.withLock { s -> Waiter? in
            s.aborted.remove(fd)  // the number is about to be free for reuse
            return s.waiters.removeValue(forKey: fd)
        }
        w?.continuation.resume(returning: false)
    }
}

private final class ThreadStart {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
