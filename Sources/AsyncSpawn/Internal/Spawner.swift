import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The threads that create children, apart from the reactor.
///
/// With CLONE_VFORK the creating thread waits in `clone` until the child execs
/// or exits. A child stopped before its exec (a SIGSTOP from any process of the
/// uid it dropped to) would hold that thread for good; were it the reactor, no
/// timeout, reap or spawn would run any more (issue 11, defect 1). So:
///
/// - Spawns run here, never on the reactor. One thread does them all while
///   spawns are quick; the pool grows (up to ``maximumThreads``) only when a
///   spawn has been inside `clone` for ``stuckAfter`` and others are waiting, so
///   a stopped child holds at most its own thread and the others go ahead.
/// - A watchdog on the reactor (one timer, armed while spawns are in flight)
///   kills a child still inside `clone` at its deadline (the run's timeout or
///   the pre-exec deadline, from the start of the spawn; and not before it has
///   been inside `clone` for ``stuckAfter``) through the pidfd the kernel
///   stored before the child ran (`cspawn_watch_kill`); `clone` returns.
/// - The threads never exit: `PR_SET_PDEATHSIG` fires when the thread that
///   created a child exits, so they live as long as the process.
final class Spawner: @unchecked Sendable {
    // @unchecked: `state` is only touched with `mutex` held.
    static let shared = Spawner()

    /// The most threads that create children at once.
    static let maximumThreads = 16
    /// How long a spawn may stay inside `clone` before it counts as stuck (a
    /// normal one takes well under a millisecond, whatever the parent's size).
    static let stuckAfter = Duration.milliseconds(50)

    /// One spawn: `body` runs on a spawner thread with that thread's watch.
    struct Job: Sendable {
        let body: @Sendable (WatchPointer) -> Void
        /// When a child still inside `clone` is killed (nil: never).
        let deadline: ContinuousClock.Instant?
        /// Names the job for ``abort(_:)``.
        let ticket: Ticket
    }

    /// The identity of one job, for ``abort(_:)``.
    final class Ticket: Sendable {}

    /// A spawner thread's `cspawn_watch`, allocated once and never freed (the
    /// thread never exits); the watchdog reads it under the pool's lock.
    struct WatchPointer: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<cspawn_watch>
    }

    private struct Worker {
        let watch: WatchPointer
        /// The spawn this thread is running, if any; `aborted`: its run was
        /// torn down (cancelled, terminated) before the child's exec.
        var current: (started: ContinuousClock.Instant, deadline: ContinuousClock.Instant?, ticket: Ticket, aborted: Bool)?
    }

    private struct State {
        /// Jobs not yet taken, from `head` on; a taken slot is nil, so that a
        /// finished job (its core, pipes, arguments) is not kept alive by the queue.
        var queue: [Job?] = []
        var head = 0
        var workers: [Worker] = []
        var idle = 0
        /// When the watchdog timer fires next (nil: not armed).
        var watchdogAt: ContinuousClock.Instant?
        var pending: Int { queue.count - head }
    }

    private var state = State()
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    private init() {
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    /// Runs `job` on a spawner thread soon; does not wait for it. Throws when no
    /// spawner thread exists and none can be started.
    func submit(_ job: Job) throws(SpawnError) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        state.queue.append(job)
        if state.workers.isEmpty {
            do throws(SpawnError) {
                try startThread()
            } catch {
                _ = state.queue.popLast()
                throw error
            }
        }
        if state.idle > 0 { pthread_cond_signal(condition) }
        armWatchdog(for: job.deadline)
    }

    /// Runs `body` on a spawner thread and returns once it has run.
    func perform(
        _ deadline: ContinuousClock.Instant?, ticket: Ticket, _ body: @escaping @Sendable (WatchPointer) -> Void
    ) async throws(SpawnError) {
        let result: Result<Void, SpawnError> = await withCheckedContinuation { continuation in
            do throws(SpawnError) {
                try submit(Job(body: { watch in
                    body(watch)
                    continuation.resume(returning: .success(()))
                }, deadline: deadline, ticket: ticket))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        try result.get()
    }

    /// Starts one more spawner thread. The caller holds `mutex`.
    private func startThread() throws(SpawnError) {
        let watch = UnsafeMutablePointer<cspawn_watch>.allocate(capacity: 1)
        watch.initialize(to: cspawn_watch(target: -1, is_pid: 0, state: 0, killed: 0))
        state.workers.append(Worker(watch: WatchPointer(pointer: watch), current: nil))
        let index = state.workers.count - 1
        let r = ThreadStart.detached { [self] in self.work(index) }
        if r != 0 {
            _ = state.workers.popLast()
            watch.deallocate()
            throw SpawnError.system("spawner: pthread_create", r)
        }
    }

    private func work(_ index: Int) {
        cspawn_block_all_signals_in_thread()
        cspawn_name_thread("asyncspawn-sp")
        pthread_mutex_lock(mutex)
        let watch = state.workers[index].watch
        while true {
            guard state.pending > 0 else {
                state.idle += 1
                pthread_cond_wait(condition, mutex)
                state.idle -= 1
                continue
            }
            let job = state.queue[state.head]!
            state.queue[state.head] = nil
            state.head += 1
            if state.head == state.queue.count {
                state.queue.removeAll(keepingCapacity: true)
                state.head = 0
            } else if state.head > 1024 && state.head * 2 > state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            state.workers[index].current = (ContinuousClock.now, job.deadline, job.ticket, false)
            pthread_mutex_unlock(mutex)
            job.body(watch)
            pthread_mutex_lock(mutex)
            state.workers[index].current = nil
        }
    }

    /// The run of `ticket` was torn down (cancelled, terminated) while its job
    /// was queued or running: a child still inside `clone` is killed by the
    /// watchdog at once (not at its deadline). A queued job still runs: its child
    /// gets the teardown as soon as it exists.
    func abort(_ ticket: Ticket) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let index = state.workers.firstIndex(where: { $0.current?.ticket === ticket }) else { return }
        state.workers[index].current?.aborted = true
        let now = ContinuousClock.now
        guard let reactor = try? Reactor.start() else { return }
        state.watchdogAt = now
        reactor.schedule(after: .zero) { [self, now] in self.watchdog(scheduledFor: now) }
    }

    // MARK: The watchdog (on the reactor thread)

    /// Arms the watchdog to fire at the earlier of `deadline` and one
    /// ``stuckAfter`` from now, unless it already fires earlier.
    private func armWatchdog(for deadline: ContinuousClock.Instant?) {
        let now = ContinuousClock.now
        var at = now + Self.stuckAfter
        if let deadline, deadline < at { at = deadline }
        if let current = state.watchdogAt, current <= at { return }
        guard let reactor = try? Reactor.start() else { return }
        state.watchdogAt = at
        reactor.schedule(after: at - now) { [self, at] in self.watchdog(scheduledFor: at) }
    }

    private func watchdog(scheduledFor at: ContinuousClock.Instant) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let now = ContinuousClock.now
        // A later arming replaced this timer with an earlier one: that one runs.
        guard state.watchdogAt == at else { return }
        state.watchdogAt = nil
        let (workers, idle, pending) = (state.workers, state.idle, state.pending)
        var retry = false
        var stuck = 0
        var busy = 0
        var next: ContinuousClock.Instant?
        for worker in workers {
            guard let current = worker.current else { continue }
            busy += 1
            // Only a child that is stuck is killed: one whose deadline passed
            // while its spawn waited in the queue gets its clone (a quick one
            // execs, and its timeout then tears it down at once).
            if current.aborted {
                if cspawn_watch_kill(worker.watch.pointer) < 0 { retry = true }
            } else if let deadline = current.deadline.map({ max($0, current.started + Self.stuckAfter) }) {
                if deadline <= now {
                    // -1: the kernel has not stored the pidfd yet; 0: the clone is over.
                    if cspawn_watch_kill(worker.watch.pointer) < 0 { retry = true }
                } else {
                    next = next.map { min($0, deadline) } ?? deadline
                }
            }
            if now - current.started >= Self.stuckAfter { stuck += 1 }
        }
        // Spawns wait while every thread is held by a stuck child: one more thread.
        if pending > 0 && idle == 0 && stuck > 0 && workers.count < Self.maximumThreads {
            if (try? startThread()) != nil { busy += 1 }
        }
        guard busy > 0 || pending > 0 else { return }
        var at = now + (retry ? .milliseconds(1) : Self.stuckAfter)
        if let next, next < at { at = next }
        state.watchdogAt = at
        Reactor.shared.schedule(after: at - now) { [self, at] in self.watchdog(scheduledFor: at) }
    }
}
