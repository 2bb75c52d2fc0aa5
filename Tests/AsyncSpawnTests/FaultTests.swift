// Faults in the parent: out of descriptors, clone failing with EAGAIN.
import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.exclusive)
struct FaultTests {
    /// With RLIMIT_NOFILE just above what is open, every spawn either works or
    /// fails with a clear error; no descriptor is leaked either way, and once the
    /// limit is restored the next spawn works.
    @Test func outOfDescriptors() async throws {
        // Warm up: the reactor's epoll and eventfd exist before counting.
        _ = try await run(Configuration(executable: "/bin/true"))
        var saved = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved)
        defer { setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved) }
        let descriptors = Proc.openFDs()
        let baseline = descriptors.count
        // RLIMIT_NOFILE bounds descriptor numbers, not how many are open, and the
        // numbers have gaps (other tests' reactors, the runner's sockets: seen 38
        // open, the highest 251, when the limit was the count plus 2 to 13 and no
        // spawn ever failed). So the limit leaves exactly 2 + extra free numbers
        // below it (+2: the counting dir fd, slack).
        let freeNumbers = (Int32(0)...).lazy.filter { descriptors[$0] == nil }
        var failures: [SpawnError] = []
        var successes = 0
        for extra in 0..<12 {
            var tight = saved
            tight.rlim_cur = rlim_t(Array(freeNumbers.prefix(2 + extra)).last! + 1)
            #expect(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &tight) == 0,
                    "setrlimit(\(tight.rlim_cur), \(tight.rlim_max)): errno \(errno)")
            var config = Configuration(executable: "/bin/echo", arguments: ["x"])
            config.timeout = .seconds(10)
            do {
                let r = try await run(config)
                #expect(r.termination == .exited(0))
                successes += 1
            } catch let error as SpawnError {
                failures.append(error)
                #expect(error.errno == EMFILE, "\(error)")
                #expect(error.step != nil, "\(error)")
                #expect(error.message.contains("Too many open files"), "\(error)")
            }
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved)
            #expect(Proc.openFDs().count == baseline, "descriptor leaked at extra=\(extra)")
        }
        #expect(!failures.isEmpty, "the tight limits never made a spawn fail (baseline \(baseline) fds: \(Proc.openFDs()))")
        #expect(successes > 0, "no spawn worked even with room")
        let after = try await run(Configuration(executable: "/bin/echo", arguments: ["ok"]))
        #expect(after.standardOutputString == "ok\n")
    }

    /// The engine's clone() failing with EAGAIN (a process limit on a non-root
    /// uid) is reported as step clone, errno EAGAIN, with nothing left behind.
    /// Runs in a small C program built from CSpawn's own sources, because the
    /// limit must apply to the process that clones.
    @Test func cloneFailsWithEAGAIN() async throws {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let root = here.deletingLastPathComponent().deletingLastPathComponent()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clonefail-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let binary = dir.appendingPathComponent("clonefail").path
        let cspawn = root.appendingPathComponent("Sources/CSpawn").path
        let build = try await run(Configuration(executable: "gcc", arguments: [
            "-D_GNU_SOURCE", "-O1", "-I", cspawn + "/include", "-o", binary,
            root.appendingPathComponent("Tests/Fixtures/clonefail.c").path,
            cspawn + "/spawn.c", cspawn + "/child.c", cspawn + "/reactor.c", "-lpthread",
        ]))
        #expect(build.termination == .exited(0), "\(build.standardErrorString)")
        // World-executable so the program can still exec itself after dropping its uid.
        chmod(dir.path, 0o755)
        let result = try await run(Configuration(executable: binary))
        #expect(result.termination == .exited(0), "\(result.standardOutputString)\(result.standardErrorString)")
        #expect(result.standardOutputString.hasPrefix("step clone errno \(EAGAIN)"))
    }
}
