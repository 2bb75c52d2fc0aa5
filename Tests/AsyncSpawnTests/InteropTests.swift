// Other spawners in the same process at the same time.
import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.exclusive)
struct InteropTests {
    /// Foundation's Process spawning and reaping its own children on a thread of
    /// its own while AsyncSpawn runs 200 children: every AsyncSpawn call ends
    /// with its real status and output, every Process run ends too.
    @Test func foundationProcessAtTheSameTime() async throws {
        let foundationDone = DispatchSemaphore(value: 0)
        let foundationResults = Box<[Int32]>([])
        Thread {
            for _ in 0..<40 {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", "exit 7"]
                do {
                    try p.run()
                    p.waitUntilExit()
                    foundationResults.update { $0.append(p.terminationStatus) }
                } catch {
                    foundationResults.update { $0.append(-1) }
                }
            }
            foundationDone.signal()
        }.start()

        let results = try await withDeadline(TestTime.hang(forOperations: 200), "AsyncSpawn runs beside Foundation.Process") {
            try await withThrowingTaskGroup(of: RunResult.self) { group -> [RunResult] in
                var results: [RunResult] = []
                for i in 0..<200 {
                    if i >= 20, let r = try await group.next() { results.append(r) }
                    group.addTask { try await run(Configuration(executable: "/bin/echo", arguments: ["\(i)"])) }
                }
                for try await r in group { results.append(r) }
                return results
            }
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.termination == .exited(0) && $0.outcome == .exited })
        #expect(Set(results.map(\.standardOutputString)).count == 200)

        // Foundation's runs end as well (bounded wait).
        let finished = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            Thread { c.resume(returning: foundationDone.wait(timeout: .now() + TestTime.hang(forOperations: 40).inSeconds) == .success) }.start()
        }
        #expect(finished)
        #expect(foundationResults.get().count == 40)
        #expect(foundationResults.get().allSatisfy { $0 == 7 })
    }
}
