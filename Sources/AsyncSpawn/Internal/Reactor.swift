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
/// the timers (timeouts, graces, drain deadlines, the spawners' watchdog). It
/// never creates a child (``Spawner`` does): a child stopped before its exec
/// cannot block it. No thread per child; the cooperative pool never blocks on a
/// descriptor: tasks suspend on a continuation that this thread resumes.
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
        /// Called once the child has ended and just before it is reaped: while
        /// it runs, the child's pid and group id are still held by its zombie.
        var willReap: @Sendable () -> Void
        var handler: @Sendable (ExitResult) -> Void
    }

    private struct State {
        var waiters: [Int32: Waiter] = [:]
        var exitWatches: [Int32: ExitWatch] = [:]  // by pidfd
        var polled: [Int32: ExitWatch] = [:]  // by pid, where pidfds are unavailable
        var jobs: [@Sendable () -> Void] = []
        var timers = TimerQueue()
        /// Descriptors in the epoll set (a guess that saves a system call per arm).
        var registered: Set<Int32> = []
        /// Aborts that found no waiter: the next wait on that fd returns false at
        /// once (closes the window between a caller's check and its registration).
        var aborted: Set<Int32> = []
        var nextID: UInt64 = 1
    }

    private let epollFD: Int32
    private let wakeFD: Int32
    /// `/dev/null`, opened once, for every child's stdio that is `.null`; see
    /// ``devNull()``.
    private let nullFD: Locked<Int32>
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
        let null = cspawn_open_null()
        if null < 0 {
            close(ep)
            close(wake)
            throw SpawnError.system("reactor: open /dev/null", -null)
        }
        epollFD = ep
        wakeFD = wake
        nullFD = Locked(null)
        _ = cspawn_epoll_add_level(epollFD, wakeFD)
        let r = ThreadStart.detached { [self] in self.loop() }
        if r != 0 {
            close(ep)
            close(wake)
            close(null)
            throw SpawnError.system("reactor: pthread_create", r)
        }
    }

    // MARK: The thread

    private func loop() {
        cspawn_block_all_signals_in_thread()
        cspawn_name_thread("asyncspawn")
        cspawn_mark_reactor_thread()
        var fds = [Int32](repeating: -1, count: 64)
        var due: [@Sendable () -> Void] = []
        var timeout: Int32 = -1
        while true {
            let n = fds.withUnsafeMutableBufferPointer {
                cspawn_epoll_wait(epollFD, $0.baseAddress, 64, timeout)
            }
            for i in 0..<Int(max(n, 0)) {
                let fd = fds[i]
                if fd == wakeFD {
                    // Level-triggered: drained here, no re-arm.
                    cspawn_eventfd_drain(wakeFD)
                    let jobs = state.withLock { s -> [@Sendable () -> Void] in
                        let j = s.jobs
                        s.jobs.removeAll(keepingCapacity: true)
                        return j
                    }
                    for job in jobs { job() }
                    continue
                }
                enum Ready { case exit(ExitWatch), waiter(Waiter), none }
                let ready = state.withLock { s -> Ready in
                    if let watch = s.exitWatches[fd] { return .exit(watch) }
                    if let waiter = s.waiters.removeValue(forKey: fd) { return .waiter(waiter) }
                    return .none
                }
                switch ready {
                case .exit(let watch): reap(watch, rearm: true)
                case .waiter(let waiter): waiter.continuation.resume(returning: true)
                case .none: break
                }
            }
            let polled = state.withLock { $0.polled.isEmpty ? [] : Array($0.polled.values) }
            for watch in polled { reap(watch, rearm: false) }
            // Due timers, and the next epoll timeout (rounded up so a timer
            // never fires early; 10 ms while children are polled).
            let now = ContinuousClock.now
            state.withLock { $0.timers.popDue(now: now, into: &due) }
            for body in due { body() }
            due.removeAll(keepingCapacity: true)
            // After the jobs and timers above, which may have scheduled more.
            let (next, polling) = state.withLock { ($0.timers.nextDeadline, !$0.polled.isEmpty) }
            timeout = polling ? 10 : -1
            if let next {
                let (sec, atto) = (next - ContinuousClock.now).components
                let ms = max(0, sec * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000)
                let capped = Int32(clamping: ms)
                timeout = timeout < 0 ? capped : min(timeout, capped)
            }
        }
    }

    private func reap(_ watch: ExitWatch, rearm: Bool) {
        // First without reaping: the owner stops signalling the child's group
        // before its id can be freed (and reused by an unrelated group).
        let ended = cspawn_has_ended(watch.pid, watch.pidfd)
        if ended == 0 {
            if rearm { _ = cspawn_epoll_arm(epollFD, watch.pidfd, 0, 1) }
            return
        }
        if ended == 1 { watch.willReap() }
        var code: Int32 = 0, status: Int32 = 0
        var user: Int64 = 0, system: Int64 = 0, rss: Int64 = 0
        let r = cspawn_wait(watch.pid, watch.pidfd, 1, &code, &status, &user, &system, &rss)
        if r == 0 {
            if rearm { _ = cspawn_epoll_arm(epollFD, watch.pidfd, 0, 1) }
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
            if watch.pidfd >= 0 {
                $0.exitWatches[watch.pidfd] = nil
                $0.registered.remove(watch.pidfd)
            } else {
                $0.polled[watch.pid] = nil
            }
        }
        if watch.pidfd >= 0 { _ = cspawn_epoll_forget(epollFD, watch.pidfd) }
        watch.handler(result)
    }

    // MARK: API

    /// The shared `/dev/null` descriptor, checked (one `fstat`) to still be the
    /// null device: if some code closed its number by mistake and the number now
    /// names another file, children must not get that file. Then a new one is
    /// opened (the old number is not ours to close any more).
    func devNull() throws(SpawnError) -> Int32 {
        let result = nullFD.withLock { fd -> Int32 in
            if cspawn_is_dev_null(fd) != 0 { return fd }
            let fresh = cspawn_open_null()
            if fresh >= 0 { fd = fresh }
            return fresh
        }
        if result < 0 { throw SpawnError.system("open /dev/null", -result) }
        return result
    }

    /// Runs `job` on the reactor thread soon; does not wait for it.
    func submit(_ job: @escaping @Sendable () -> Void) {
        state.withLock { $0.jobs.append(job) }
        cspawn_eventfd_signal(wakeFD)
    }

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
    ///
    /// A delay of ``never`` or longer is never due: `body` is dropped, and the
    /// id is still one that ``cancelTimer(_:)`` accepts. (Adding such a delay to
    /// the clock could trap; and a timer 136 years away is not one.)
    @discardableResult
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> UInt64 {
        guard delay < Self.never else {
            return state.withLock { s in
                s.nextID += 1
                return s.nextID
            }
        }
        let deadline = ContinuousClock.now + max(delay, .zero)
        let (id, earliest) = state.withLock { s -> (UInt64, Bool) in
            s.nextID += 1
            let earliest = s.timers.nextDeadline.map { deadline < $0 } ?? true
            s.timers.insert(id: s.nextID, deadline: deadline, body: body)
            return (s.nextID, earliest)
        }
        // Wake the loop to shorten its epoll timeout, unless it already wakes
        // earlier, or this is the loop's own thread (it recomputes the timeout
        // before it waits again).
        if earliest && cspawn_is_reactor_thread() == 0 { cspawn_eventfd_signal(wakeFD) }
        return id
    }

    /// The shortest delay that counts as "never" (2^32 s, about 136 years).
    /// Every delay the library takes from a caller (a timeout, a grace period, a
    /// drain deadline) saturates here instead of trapping.
    static let never = Duration.seconds(Int64(1) << 32)

    /// Cancels a timer that has not fired yet.
    func cancelTimer(_ id: UInt64) {
        state.withLock { $0.timers.cancel(id) }
    }

    /// Calls `handler` on the reactor thread once the child has exited and been
    /// reaped (by pidfd when there is one, else by polling `waitid(P_PID, WNOHANG)`).
    func watchExit(
        pid: Int32, pidfd: Int32, willReap: @escaping @Sendable () -> Void = {},
        handler: @escaping @Sendable (ExitResult) -> Void
    ) {
        let watch = ExitWatch(pid: pid, pidfd: pidfd, willReap: willReap, handler: handler)
        state.withLock {
            if pidfd >= 0 {
                $0.exitWatches[pidfd] = watch
                $0.registered.insert(pidfd)
            } else {
                $0.polled[pid] = watch
            }
        }
        if pidfd >= 0 {
            _ = cspawn_epoll_arm(epollFD, pidfd, 0, 0)
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
                let (cancelled, known) = state.withLock { s -> (Bool, Bool) in
                    if Task.isCancelled { return (true, false) }
                    if s.aborted.remove(fd) != nil { return (true, false) }
                    if let old = s.waiters[fd] { old.continuation.resume(returning: false) }
                    s.waiters[fd] = Waiter(id: id, continuation: continuation)
                    return (false, !s.registered.insert(fd).inserted)
                }
                if cancelled {
                    continuation.resume(returning: false)
                    return
                }
                let r = cspawn_epoll_arm(epollFD, fd, writable ? 1 : 0, known ? 1 : 0)
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
            s.registered.remove(fd)
            s.aborted.remove(fd)  // the number is about to be free for reuse
            return s.waiters.removeValue(forKey: fd)
        }
        w?.continuation.resume(returning: false)
    }
}

/// A thread of the library's own (the reactor, the spawners), which never exits.
final class ThreadStart {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    /// Starts a detached thread running `body`; returns 0 or pthread_create's error.
    static func detached(_ body: @escaping () -> Void) -> Int32 {
        let box = Unmanaged.passRetained(ThreadStart(body))
        var thread = pthread_t()
        let r = pthread_create(&thread, nil, { raw in
            let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            start.body()
            return nil
        }, box.toOpaque())
        if r != 0 {
            box.release()
            return r
        }
        pthread_detach(thread)
        return 0
    }
}

/// The reactor's timers: a binary min-heap of deadlines; a cancelled timer
/// leaves its heap entry behind, skipped when it comes up.
struct TimerQueue {
    private struct Entry {
        var deadline: ContinuousClock.Instant
        var id: UInt64
    }
    private var heap: [Entry] = []
    private var bodies: [UInt64: @Sendable () -> Void] = [:]

    var isEmpty: Bool { bodies.isEmpty }

    /// The earliest deadline of a live timer.
    var nextDeadline: ContinuousClock.Instant? {
        mutating get {
            while let top = heap.first, bodies[top.id] == nil { popTop() }
            return heap.first?.deadline
        }
    }

    mutating func insert(id: UInt64, deadline: ContinuousClock.Instant, body: @escaping @Sendable () -> Void) {
        bodies[id] = body
        heap.append(Entry(deadline: deadline, id: id))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].deadline < heap[parent].deadline else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func cancel(_ id: UInt64) {
        bodies[id] = nil
        if bodies.isEmpty {
            heap.removeAll(keepingCapacity: true)
        } else if heap.count > 64 && heap.count > 2 * bodies.count {
            // Mostly cancelled entries (long timeouts of runs that ended early):
            // rebuild from the live ones, so the heap stays O(live timers).
            heap.removeAll { bodies[$0.id] == nil }
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    /// Removes the timers due at `now` and appends their bodies to `due`.
    mutating func popDue(now: ContinuousClock.Instant, into due: inout [@Sendable () -> Void]) {
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let body = bodies.removeValue(forKey: top.id) { due.append(body) }
        }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].deadline < heap[m].deadline { m = l }
            if r < heap.count && heap[r].deadline < heap[m].deadline { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}
