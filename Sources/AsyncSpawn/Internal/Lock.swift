#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// State guarded by a `pthread_mutex_t`.
///
/// Used instead of `Synchronization.Mutex` because the thread sanitizer
/// understands pthread mutexes (it intercepts them) but not the futex-based
/// `Mutex`, so `swift test --sanitize=thread` can check AsyncSpawn for real.
/// Critical sections are short and never suspend.
final class Locked<State>: @unchecked Sendable {
    // @unchecked: `state` is only touched between lock and unlock.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var state: State

    init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
