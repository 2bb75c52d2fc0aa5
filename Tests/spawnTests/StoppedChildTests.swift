// The reproduction of issue 11, defect 1, through the CLI: a program of uid U
// that SIGSTOPs every new pid it may signal, and next to it
// `spawn --uid U --gid U --timeout 0.5 -- /bin/true` in a loop. On the main of
// 2026-12-03 spawn hung within about ten runs (its only thread that created
// children waited in clone() for a stopped child for good). Now every run ends:
// at its timeout, as `timed_out` with signal 9 and a pid when the child was
// stopped before its exec.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Stopped children", .serialized)
struct StoppedChildTests {
    @Test("a child stopped before its exec ends at --timeout: timed_out, 124, signal 9, pid", .enabled(if: getuid() == 0))
    func attackerOfTheSameUID() throws {
        let uid = try UnusedUser.next()
        let attacker = try Attacker(uid: uid)
        defer { attacker.stop() }
        var beforeExec = 0
        for _ in 0..<12 {
            let r = CLI.spawn(["--json", "--uid", "\(uid)", "--gid", "\(uid)", "--timeout", "0.5",
                               "--seccomp", "no-administration", "--", "/bin/true"],
                              deadline: TestTime.hang)
            #expect(!r.hung, "spawn hung: \(r)")
            let report = try checkedReport(r)
            #expect(r.status == 0 || r.status == 124, "\(r)")
            if r.status == 124 {
                #expect(report.outcome == "timed_out")
                #expect(report.pid != nil)
                if report.signal == Int(SIGKILL) { beforeExec += 1 }
            }
        }
        #expect(beforeExec > 0, "the attacker never caught a child before its exec")
    }

    /// The attacker: the test probe's `stop-new-pids`, as uid `uid`, started
    /// through spawn itself (which kills it when spawn is killed: die-with-parent).
    struct Attacker {
        let pid: pid_t
        let directory: String

        init(uid: UInt32) throws {
            // A copy of the probe every user may run (the build directory may not be).
            let source = isSanitized
                ? UninstrumentedProbe.path
                : URL(fileURLWithPath: CLI.spawnPath).deletingLastPathComponent().appendingPathComponent("spawn-probe").path
            directory = "/tmp/asyncspawn-attacker-\(getpid())-\(Int.random(in: 0...999_999))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o755])
            let probe = directory + "/spawn-probe"
            try FileManager.default.copyItem(atPath: source, toPath: probe)
            chmod(probe, 0o755)
            let argv = [CLI.spawnPath, "--uid", "\(uid)", "--gid", "\(uid)", "--timeout", "\(Int(TestTime.hang.inSeconds))",
                        "--", probe, "stop-new-pids"]
            var cArgs = argv.map { strdup($0) } + [nil]
            defer { for a in cArgs { free(a) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            var child: pid_t = 0
            let rc = posix_spawn(&child, CLI.spawnPath, &actions, nil, &cArgs, environ)
            guard rc == 0 else { throw PreconditionUnmet("cannot start the attacker: \(String(cString: strerror(rc)))") }
            pid = child
            // Wait until the attacker runs as uid (the probe itself, not spawn).
            let end = CLI.now() + TestTime.hang.inSeconds
            while UnusedUser.processes(withUID: uid).isEmpty && CLI.now() < end { usleep(1000) }
        }

        func stop() {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
