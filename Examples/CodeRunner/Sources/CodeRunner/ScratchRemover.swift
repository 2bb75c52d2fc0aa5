import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The one thread on which scratch directories are removed, fed by a queue.
///
/// Removing a run's files takes as long as the run made it take (hundreds of
/// thousands of files, a tree thousands of levels deep): done on Swift's
/// cooperative pool it held one of its few threads for that long, and with as
/// many large removals as the pool has threads no request was answered until
/// they ended. Here a request's task only awaits a continuation, which this
/// thread resumes when the removal is done; the pool's thread is free meanwhile.
/// Removals are done one at a time, in the order they were asked for.
final class ScratchRemover: Sendable {
    static let shared = ScratchRemover()

    private struct Job: Sendable {
        let work: @Sendable () -> Void
    }

    private let jobs = Mutex<[Job]>([])
    private let waiting = DispatchSemaphore(value: 0)

    private init() {
        let thread = Thread { [self] in serve() }
        thread.name = "scratch-remover"
        thread.start()
    }

    /// Runs `work` on the removal thread and returns its result; the calling task
    /// is suspended meanwhile (it holds no thread). Not cancellable: a removal,
    /// once asked for, is carried out.
    func perform<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            jobs.withLock { $0.append(Job { continuation.resume(returning: work()) }) }
            waiting.signal()
        }
    }

    private func serve() -> Never {
        while true {
            waiting.wait()
            let job = jobs.withLock { $0.removeFirst() }
            job.work()
        }
    }
}
