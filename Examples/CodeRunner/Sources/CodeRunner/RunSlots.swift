import Synchronization

/// A counting semaphore for runs: at most `capacity` at once, at most `maxQueued`
/// requests waiting, each waiting at most a bounded time. Waiting is cancellable
/// (a client that goes away while queued leaves the queue).
final class RunSlots: Sendable {
    enum Refusal: Error {
        /// The queue is full: refused at once.
        case queueFull
        /// Waited the whole queue timeout without getting a slot.
        case timedOut
    }

    private enum Waiter {
        case registered
        case suspended(CheckedContinuation<Bool, Never>)
        case abandoned
    }

    private struct State {
        var available: Int
        var queue: [UInt64] = []
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
    }

    let capacity: Int
    let maxQueued: Int
    private let state: Mutex<State>

    init(capacity: Int, maxQueued: Int) {
        self.capacity = capacity
        self.maxQueued = maxQueued
        self.state = Mutex(State(available: capacity))
    }

    /// Runs holding a slot now, and requests waiting for one.
    var counts: (running: Int, queued: Int) {
        state.withLock { (capacity - $0.available, $0.queue.count) }
    }

    /// Gets a slot, waiting up to `timeout`. The lease gives it back when released
    /// or deinitialized, whichever comes first.
    func acquire(timeout: Duration) async throws -> Lease {
        enum Fast {
            case granted, full
            case wait(UInt64)
        }
        let fast: Fast = state.withLock { s in
            if s.available > 0 && s.queue.isEmpty {
                s.available -= 1
                return .granted
            }
            if s.queue.count >= maxQueued { return .full }
            s.nextID += 1
            s.waiters[s.nextID] = .registered
            s.queue.append(s.nextID)
            return .wait(s.nextID)
        }
        let id: UInt64
        switch fast {
        case .granted: return Lease(self)
        case .full: throw Refusal.queueFull
        case .wait(let waiter): id = waiter
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            abandon(id)
        }
        defer { timer.cancel() }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                suspend(id, continuation)
            }
        } onCancel: {
            abandon(id)
        }
        if granted { return Lease(self) }
        try Task.checkCancellation()
        throw Refusal.timedOut
    }

    private func suspend(_ id: UInt64, _ continuation: CheckedContinuation<Bool, Never>) {
        let resume: Bool? = state.withLock { s in
            switch s.waiters[id] {
            case .abandoned?, nil:
                s.waiters[id] = nil
                return false
            case .registered?:
                if s.available > 0 {
                    s.available -= 1
                    s.waiters[id] = nil
                    s.queue.removeAll { $0 == id }
                    return true
                }
                s.waiters[id] = .suspended(continuation)
                return nil
            case .suspended?:
                preconditionFailure("a waiter suspended twice")
            }
        }
        if let resume { continuation.resume(returning: resume) }
    }

    /// Timeout or cancellation: leave the queue (no effect once granted).
    private func abandon(_ id: UInt64) {
        let continuation: CheckedContinuation<Bool, Never>? = state.withLock { s in
            switch s.waiters[id] {
            case nil, .abandoned?:
                return nil
            case .registered?:
                s.waiters[id] = .abandoned
                s.queue.removeAll { $0 == id }
                return nil
            case .suspended(let c)?:
                s.waiters[id] = nil
                s.queue.removeAll { $0 == id }
                return c
            }
        }
        continuation?.resume(returning: false)
    }

    fileprivate func release() {
        let wake: CheckedContinuation<Bool, Never>? = state.withLock { s in
            s.available += 1
            // The first waiter already suspended gets the slot; one only registered
            // takes a free slot itself when it suspends.
            guard
                let index = s.queue.firstIndex(where: {
                    if case .suspended? = s.waiters[$0] { return true } else { return false }
                })
            else { return nil }
            let id = s.queue.remove(at: index)
            guard case .suspended(let c)? = s.waiters.removeValue(forKey: id) else { return nil }
            s.available -= 1
            return c
        }
        wake?.resume(returning: true)
    }

    /// A held slot. Released once: explicitly, or when the last reference goes away
    /// (so a response body that is never written cannot leak a slot).
    final class Lease: Sendable {
        private let slots: RunSlots
        private let released = Atomic<Bool>(false)

        fileprivate init(_ slots: RunSlots) { self.slots = slots }

        func release() {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { slots.release() }
        }

        deinit { release() }
    }
}
