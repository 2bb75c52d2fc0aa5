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
    /// The contract, deterministically: the child stops itself right before its
    /// exec (ASYNCSPAWN_TEST_STOP_BEFORE_EXEC=1, a test-only switch), as the
    /// attacker below would stop it.
    @Test("a child stopped before its exec ends at --timeout: timed_out, 124, signal 9, pid")
    func stoppedBeforeExec() throws {
        var environment = CLI.baseEnvironment
        environment["ASYNCSPAWN_TEST_STOP_BEFORE_EXEC"] = "1"
        let r = CLI.spawn(["--json", "--timeout", "1", "--", "/bin/true"], environment: environment)
        let report = try checkedReport(r)
        #expect(r.status == 124, "\(r)")
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL))
        #expect(report.pid != nil)
        #expect(r.elapsed >= TestTime.notBefore(.seconds(1)).inSeconds, "\(r)")
        #expect(r.elapsed < TestTime.endsBy(.seconds(1)).inSeconds, "\(r)")

        // Without a timeout: the pre-exec deadline (10 s), spawn_failed, exec, ETIMEDOUT.
        let failed = CLI.spawn(["--json", "--", "/bin/true"], environment: environment)
        let failure = try checkedReport(failed)
        #expect(failure.outcome == "spawn_failed", "\(failed)")
        #expect(failure.error?.step == "exec")
        #expect(failure.error?.errno == Int(ETIMEDOUT))
    }

    /// The reproduction: an attacker of the same uid. Whether it catches a child
    /// before its exec depends on the scheduler (the test above makes sure of
    /// the contract); what this one asserts, whatever it catches, is that every
    /// run ends — before the fix, a caught child hung spawn for good.
    @Test("an attacker that stops every new pid of the uid never hangs spawn", .enabled(if: getuid() == 0))
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
        print("attackerOfTheSameUID: \(beforeExec) of 12 runs caught before their exec")
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
            try copyExecutable(source, to: probe)
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

@Suite("Children that leave their group")
struct GroupEscapeTests {
    /// Issue 11, defect 5: in `--group group` mode a child that setpgid()s itself
    /// into spawn's own group was never signalled (it ran 8 s past --timeout 1 on
    /// the main of 2026-12-03). Now the child itself is signalled too.
    @Test("--group group: a child that rejoined spawn's group still ends at --timeout")
    func rejoinedGroup() throws {
        let script = "import os, time\nos.setpgid(0, os.getpgid(os.getppid()))\nprint('joined', flush=True)\ntime.sleep(\(TestTime.childSleep))\n"
        let r = CLI.spawn(["--json", "--group", "group", "--timeout", "1", "--", "python3", "-c", script])
        let report = try checkedReport(r)
        #expect(report.stdout == "joined\n", "\(r)")
        #expect(r.status == 124, "\(r)")
        #expect(report.outcome == "timed_out")
        #expect(r.elapsed < TestTime.endsBy(.seconds(1)).inSeconds, "\(r)")
    }
}

@Suite("Fallbacks for older kernels")
struct FallbackTests {
    /// Issue 11, defect 11, through the CLI: `--nofile 4` with the /proc/self/fd
    /// walk forced (ASYNCSPAWN_TEST_FORCE_FALLBACKS=1, as on a kernel before 5.11)
    /// failed with step close_fds on the main of 2026-12-03.
    @Test("--nofile under the /proc/self/fd fallback", arguments: ["4", "16"])
    func lowOpenFilesLimit(limit: String) throws {
        var environment = CLI.baseEnvironment
        environment["ASYNCSPAWN_TEST_FORCE_FALLBACKS"] = "1"
        let r = CLI.spawn(["--json", "--nofile", limit, "--", "/bin/sh", "-c", "ls /proc/self/fd"],
                          environment: environment)
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        // sh, ls: 0, 1, 2 and ls's own directory descriptor.
        #expect(report.stdout.split(separator: "\n").count <= 4, "\(r)")
    }
}

@Suite("Capabilities", .serialized)
struct CapabilityTests {
    /// A copy of spawn every user may run (the build directory may not be).
    static func worldSpawn() throws -> (path: String, directory: String) {
        let directory = "/tmp/asyncspawn-caps-\(getpid())-\(Int.random(in: 0...999_999))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        let path = directory + "/spawn"
        try copyExecutable(CLI.spawnPath, to: path)
        return (path, directory)
    }

    /// Issue 11, defect 3: spawn run by a non-root user that holds CAP_SETUID and
    /// CAP_SETGID (and CAP_SETPCAP) in its ambient set, dropping its child to
    /// uid 65534. On the main of 2026-12-03 the child had CapEff 0x1c0 and could
    /// setresuid(0). Now every set is empty.
    @Test("a non-root spawn with ambient capabilities leaves its child none", .enabled(if: getuid() == 0))
    func ambientCapabilitiesAreDropped() throws {
        let uid = try UnusedUser.next()
        let (spawn, directory) = try Self.worldSpawn()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let r = CLI.run(executable: "/usr/bin/setpriv", argv: [
            "setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups",
            "--inh-caps=+setuid,+setgid,+setpcap", "--ambient-caps=+setuid,+setgid,+setpcap",
            "--", spawn, "--json", "--uid", "65534", "--gid", "65534", "--cwd", "/", "--",
            "/bin/sh", "-c", "grep ^Cap /proc/self/status; setpriv --reuid=0 --regid=0 --clear-groups /bin/true 2>/dev/null && echo regained",
        ])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        for name in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(report.stdout.contains("\(name):\t0000000000000000"), "\(name): \(report.stdout)")
        }
        #expect(!report.stdout.contains("regained"), "the child got root back: \(report.stdout)")
    }

    /// Without CAP_SETPCAP the bounding set cannot be cleared: the spawn fails
    /// with the step `capabilities` instead of leaving a child that could regain
    /// capabilities through a setuid-root program.
    @Test("no CAP_SETPCAP: spawn_failed with step capabilities", .enabled(if: getuid() == 0))
    func boundingSetNeedsSetpcap() throws {
        let uid = try UnusedUser.next()
        let (spawn, directory) = try Self.worldSpawn()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let r = CLI.run(executable: "/usr/bin/setpriv", argv: [
            "setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups",
            "--inh-caps=+setuid,+setgid", "--ambient-caps=+setuid,+setgid",
            "--", spawn, "--json", "--uid", "65534", "--gid", "65534", "--cwd", "/", "--", "/bin/true",
        ])
        let report = try checkedReport(r)
        #expect(report.outcome == "spawn_failed", "\(r)")
        #expect(report.error?.step == "capabilities", "\(r)")
        #expect(report.error?.errno == Int(EPERM), "\(r)")
    }
}

@Suite("PATH search as the child sees it")
struct PathSearchTests {
    /// Issue 11, defect 12, through the CLI: with --uid, a root-only file first
    /// in PATH is skipped (on the main of 2026-12-03: spawn_failed, exec, EACCES);
    /// a relative PATH entry is taken against --cwd (there: resolve, ENOENT).
    @Test("--uid skips what the user cannot execute; a relative entry is taken against --cwd", .enabled(if: getuid() == 0))
    func searchAsTheChild() throws {
        let dir = "/tmp/asyncspawn-path-\(getpid())-\(Int.random(in: 0...999_999))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["", "/a", "/b"] {
            try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o755])
        }
        for (sub, text, mode) in [("a", "root-only", 0o700), ("b", "everyone", 0o755)] {
            let path = "\(dir)/\(sub)/asyncspawn-path-probe"
            _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\necho \(text)\n".utf8),
                                               attributes: [.posixPermissions: mode])
            chmod(path, mode_t(mode))
        }
        let dropped = CLI.spawn(["--json", "--uid", "65534", "--gid", "65534", "--cwd", "/",
                                 "--env", "PATH=\(dir)/a:\(dir)/b", "--", "asyncspawn-path-probe"])
        #expect(try checkedReport(dropped).stdout == "everyone\n", "\(dropped)")
        let relative = CLI.spawn(["--json", "--cwd", dir, "--env", "PATH=b", "--", "asyncspawn-path-probe"])
        #expect(try checkedReport(relative).stdout == "everyone\n", "\(relative)")
    }
}
