// The reactor's timers: the heap's order, cancellation, and a timer scheduled
// from the reactor thread itself (a teardown's SIGKILL after the grace, the
// group's poll) firing without any other wake-up of the loop.
@testable import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.exclusive)
struct ReactorTests {
    /// Random deadlines, some cancelled: the due ones come out in deadline order,
    /// the cancelled ones never, and the next deadline is the earliest live one.
    @Test func timerQueueOrderAndCancellation() {
        var queue = TimerQueue()
        let base = ContinuousClock.now
        var generator = SystemRandomNumberGenerator()
        var live: [(UInt64, Int)] = []
        let fired = Box<[UInt64]>([])
        for id in UInt64(1)...500 {
            let ms = Int.random(in: 0..<1000, using: &generator)
            queue.insert(id: id, deadline: base + .milliseconds(ms)) { fired.update { $0.append(id) } }
            live.append((id, ms))
        }
        for (id, _) in live where id % 3 == 0 { queue.cancel(id) }
        live.removeAll { $0.0 % 3 == 0 }
        live.sort { ($0.1, $0.0) < ($1.1, $1.0) }
        #expect(queue.nextDeadline == base + .milliseconds(live[0].1))

        var due: [@Sendable () -> Void] = []
        queue.popDue(now: base + .milliseconds(500), into: &due)
        for body in due { body() }
        let expectedFirst = live.filter { $0.1 <= 500 }
        #expect(fired.get().count == expectedFirst.count)
        // Equal deadlines may come out in any order; the deadlines never go down.
        let deadlines = Dictionary(uniqueKeysWithValues: live.map { ($0.0, $0.1) })
        let firedDeadlines = fired.get().map { deadlines[$0] ?? -1 }
        #expect(firedDeadlines == firedDeadlines.sorted())
        #expect(!firedDeadlines.contains(-1), "a cancelled timer fired")

        due.removeAll()
        queue.popDue(now: base + .seconds(2), into: &due)
        for body in due { body() }
        #expect(fired.get().count == live.count)
        #expect(queue.nextDeadline == nil)
        #expect(queue.isEmpty)
    }

    /// Most timers cancelled (long timeouts of runs that ended early): the heap is
    /// rebuilt from the live ones, which still come out in order.
    @Test func timerQueueCompactsCancelledEntries() {
        var queue = TimerQueue()
        let base = ContinuousClock.now
        let fired = Box<[Int]>([])
        for i in 0..<1000 {
            let ms = (i * 7919) % 1000  // a permutation of 0..<1000
            queue.insert(id: UInt64(i + 1), deadline: base + .milliseconds(ms)) { fired.update { $0.append(ms) } }
        }
        for i in 0..<1000 where i % 10 != 0 { queue.cancel(UInt64(i + 1)) }
        var due: [@Sendable () -> Void] = []
        queue.popDue(now: base + .seconds(2), into: &due)
        for body in due { body() }
        let expected = (0..<1000).filter { $0 % 10 == 0 }.map { ($0 * 7919) % 1000 }.sorted()
        #expect(fired.get() == expected)
        #expect(queue.isEmpty)
    }

    /// Some code closes the shared `/dev/null` descriptor by mistake and its
    /// number is reused for a file: children with `.null` stdio must still get
    /// the null device, never that file.
    @Test func strayCloseOfTheSharedNullDescriptor() async throws {
        let reactor = try Reactor.start()
        let null = try reactor.devNull()
        let dir = TempDir()
        let path = dir.file("secret")
        #expect(FileManager.default.createFile(atPath: path, contents: Data("secret\n".utf8)))
        // The number now names the file (as after a stray close and a reuse).
        let file = open(path, O_RDONLY | O_CLOEXEC)
        #expect(file >= 0)
        #expect(dup2(file, null) == null)
        _ = fcntl(null, F_SETFD, FD_CLOEXEC)
        close(file)
        defer { close(null) }
        var config = Configuration(executable: "/bin/cat")
        config.standardInput = .null
        let result = try await run(config)
        #expect(result.termination == .exited(0))
        #expect(result.standardOutputString == "", "the child read the file that took the null descriptor's number")
        #expect(try reactor.devNull() != null)
    }

    /// A timer whose body schedules another (as a teardown does for its SIGKILL)
    /// fires on time with nothing else waking the reactor (the test runs alone).
    @Test func timerScheduledFromATimerFires() async throws {
        let reactor = try Reactor.start()
        let (first, second) = (Duration.milliseconds(20), Duration.milliseconds(50))
        let started = ContinuousClock.now
        let elapsed = try await withDeadline(TestTime.hang) {
            await withCheckedContinuation { (done: CheckedContinuation<Duration, Never>) in
                reactor.schedule(after: first) {
                    reactor.schedule(after: second) {
                        done.resume(returning: ContinuousClock.now - started)
                    }
                }
            }
        }
        #expect(elapsed >= TestTime.notBefore(first + second))
    }
}
