// What the child starts with: signal dispositions and mask, descriptors,
// session and group, credentials, environment, working directory.

import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let zeroMask = "0000000000000000"

@Suite(Gate.shared)
struct SignalStateTests {
    /// The process ignores SIGPIPE and SIGUSR2 (dispositions are process-wide and
    /// survive exec unless reset) and the calling thread blocks SIGUSR1; the
    /// library spawns from its reactor thread, which blocks every signal. The
    /// child must start with nothing ignored, nothing caught, nothing blocked.
    @Test func dispositionsAndMaskAreReset() async throws {
        let oldPipe = signal(SIGPIPE, SIG_IGN)
        let oldUsr2 = signal(SIGUSR2, SIG_IGN)
        defer {
            signal(SIGPIPE, oldPipe)
            signal(SIGUSR2, oldUsr2)
        }
        // The calling thread is a thread of our own (a task executor), so its
        // mask stays what we set for the whole call.
        let executor = ThreadExecutor(setup: {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGUSR1)
            sigaddset(&set, SIGTERM)
            pthread_sigmask(SIG_BLOCK, &set, nil)
        })
        // The probe links libswiftCore (SwiftPM links it into C executables),
        // whose backtracer would catch crash signals in the child itself;
        // SWIFT_BACKTRACE=enable=no keeps the child's own sigcgt at 0.
        var config = Probe.config()
        config.environment = Environment.inherit.setting("SWIFT_BACKTRACE", to: "enable=no")
        let (report, result) = try await withTaskExecutorPreference(executor) { [config] in
            try await probeReport(config)
        }
        await executor.retireThread()
        #expect(result.termination == .exited(0))
        #expect(report["sigblk"] == zeroMask)
        #expect(report["sigign"] == zeroMask)
        #expect(report["sigcgt"] == zeroMask)
        // And the parent really did ignore SIGPIPE while spawning (sanity check of
        // the test itself: /proc/self/status of this process).
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let ign = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
        let mask = UInt64(ign?.split(separator: "\t").last.map(String.init) ?? "0", radix: 16) ?? 0
        #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) != 0)
    }

    /// Default dispositions really are in effect: SIGPIPE kills a writer whose
    /// reader went away (the parent ignores SIGPIPE).
    @Test func sigpipeKillsTheChild() async throws {
        // The child writes to a pipe whose read end is closed.
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        var config = Probe.config("write", "100000")
        config.standardOutput = .fileDescriptor(fds[1])
        let result = try await run(config)
        close(fds[1])
        #expect(result.termination == .signaled(.pipe))
        #expect(result.outcome == .signaled)
    }

    @Test func noNewPrivsAndSeccompAreOffByDefault() async throws {
        let (report, _) = try await probeReport()
        #expect(report["no_new_privs"] == "0")
        #expect(report["seccomp"] == "0")
    }

    @Test func deathSignalByDefaultAndOff() async throws {
        let (on, _) = try await probeReport()
        #expect(on["pdeathsig"] == "\(SIGKILL)")
        var config = Probe.config()
        config.dieWithParent = false
        let (off, _) = try await probeReport(config)
        #expect(off["pdeathsig"] == "0")
    }

    @Test func noNewPrivilegesWhenAsked() async throws {
        var config = Probe.config()
        config.noNewPrivileges = true
        let (report, _) = try await probeReport(config)
        #expect(report["no_new_privs"] == "1")
        #expect(report["seccomp"] == "0")
    }
}

/// pipe() then FD_CLOEXEC on both ends (pipe2 is not exported to Swift).
func cloexecPipe() -> [Int32] {
    var fds: [Int32] = [-1, -1]
    precondition(pipe(&fds) == 0)
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return fds
}

@Suite(Gate.shared)
struct DescriptorTests {
    /// Descriptors this process opened without O_CLOEXEC do not reach the child.
    @Test func onlyStandardDescriptors() async throws {
        let leakyFile = open("/dev/null", O_RDONLY)  // no O_CLOEXEC on purpose
        var leakyPipe: [Int32] = [-1, -1]
        #expect(pipe(&leakyPipe) == 0)  // no O_CLOEXEC either
        defer {
            close(leakyFile)
            close(leakyPipe[0])
            close(leakyPipe[1])
        }
        #expect(leakyFile >= 3)
        #expect(fcntl(leakyFile, F_GETFD) & FD_CLOEXEC == 0)
        let (report, result) = try await probeReport()
        #expect(result.termination == .exited(0))
        #expect(report.fds == [0, 1, 2], "fds \(report["fds"] ?? "")")
    }

    /// With every standard stream set to /dev/null, still exactly 0, 1, 2.
    @Test func standardDescriptorsWithNull() async throws {
        let dir = TempDir()
        let out = open(dir.file("out"), O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(out) }
        var config = Probe.config("report")
        config.standardOutput = .fileDescriptor(out)
        config.standardError = .null
        config.standardInput = .null
        let result = try await run(config)
        #expect(result.termination == .exited(0))
        #expect(result.standardOutput.isEmpty)
        let text = try String(contentsOfFile: dir.file("out"), encoding: .utf8)
        #expect(Report(text).fds == [0, 1, 2])
    }

    /// A pipe mapped to fd 5: the child has 0, 1, 2, 5 and its writes on 5 arrive.
    @Test func mappedDescriptor() async throws {
        let fds = cloexecPipe()
        defer { close(fds[0]) }

        var reportConfig = Probe.config("report")
        reportConfig.extraFileDescriptors = [FileDescriptorMapping(source: fds[1], target: 5)]
        let (report, _) = try await probeReport(reportConfig)
        #expect(report.fds == [0, 1, 2, 5], "fds \(report["fds"] ?? "")")

        var writeConfig = Probe.config("write", "10", "5")
        writeConfig.extraFileDescriptors = [FileDescriptorMapping(source: fds[1], target: 5)]
        let result = try await run(writeConfig)
        close(fds[1])
        #expect(result.termination == .exited(0))
        #expect(result.standardOutput.isEmpty)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fds[0], &buffer, 64)
        #expect(n == 10)
        #expect(Array(buffer.prefix(max(n, 0))) == probePattern(10))
    }

    /// Two mappings that swap numbers (source of one is the target of the other).
    @Test func mappingsThatOverlap() async throws {
        let a = cloexecPipe(), b = cloexecPipe()
        // a[1] is closed below, before the read: close it here only if that was
        // not reached. A second close() of the number could close a descriptor
        // another test (or the library, for a concurrent spawn) has opened since.
        var aWriteOpen = true
        defer {
            for fd in [a[0], b[0], b[1]] { close(fd) }
            if aWriteOpen { close(a[1]) }
        }
        // b's write end, at a number the other mapping targets.
        let high = fcntl(b[1], F_DUPFD_CLOEXEC, 40)
        #expect(high >= 40)
        defer { close(high) }
        var config = Probe.config("write", "7", "\(high)")
        config.extraFileDescriptors = [
            FileDescriptorMapping(source: high, target: 9),     // b -> 9
            FileDescriptorMapping(source: a[1], target: high),  // a -> 40: the child writes here
        ]
        let result = try await run(config)
        #expect(result.termination == .exited(0), "stderr \(result.standardErrorString)")
        close(a[1])
        aWriteOpen = false
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(read(a[0], &buffer, 16) == 7)
    }
}

@Suite(Gate.shared)
struct GroupTests {
    @Test func newSessionByDefault() async throws {
        let (report, result) = try await probeReport()
        let pid = try #require(report.int("pid"))
        #expect(pid == result.processID)
        #expect(report.int("sid") == pid)
        #expect(report.int("pgid") == pid)
    }

    @Test func newGroup() async throws {
        var config = Probe.config()
        config.processGroup = .newGroup
        let (report, _) = try await probeReport(config)
        let pid = try #require(report.int("pid"))
        #expect(report.int("pgid") == pid)
        #expect(report.int("sid") == getsid(0))
    }

    @Test func inheritGroup() async throws {
        var config = Probe.config()
        config.processGroup = .inherit
        let (report, _) = try await probeReport(config)
        #expect(report.int("pgid") == getpgrp())
        #expect(report.int("sid") == getsid(0))
    }

    /// The child's parent is this process (the reactor thread created it).
    @Test func parentIsThisProcess() async throws {
        let (report, _) = try await probeReport()
        #expect(report.int("ppid") == getpid())
    }
}

@Suite(Gate.shared, .serialized)
struct CredentialTests {
    @Test func dropToNobody() async throws {
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534, groupID: 65534)
        let (report, result) = try await probeReport(config)
        #expect(result.termination == .exited(0), "stderr \(result.standardErrorString)")
        #expect(report["uid"] == "65534")
        #expect(report["gid"] == "65534")
        #expect(report["groups"] == "")
    }

    @Test func supplementaryGroups() async throws {
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534, groupID: 65534, supplementaryGroups: [100, 65534])
        let (report, _) = try await probeReport(config)
        #expect(report["uid"] == "65534")
        #expect(report["groups"] == "100,65534")
    }

    /// Dropping the uid clears the parent-death signal in the kernel; the library
    /// must set it after the drop, so the child still has it.
    @Test func deathSignalSurvivesTheCredentialDrop() async throws {
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534, groupID: 65534)
        config.dieWithParent = true
        let (report, result) = try await probeReport(config)
        #expect(result.termination == .exited(0))
        #expect(report["uid"] == "65534")
        #expect(report["pdeathsig"] == "\(SIGKILL)")
    }

    /// Under a non-root uid (root is exempt), RLIMIT_NPROC stops forks. The uid
    /// is one no other process uses: RLIMIT_NPROC counts every process of the
    /// uid, machine-wide, so with a shared uid the count is not the test's own.
    @Test func processLimitUnderUnprivilegedUser() async throws {
        let uid = try UnusedUser.next()
        var config = Configuration(executable: Probe.worldExecutableCopy, arguments: ["fork-n", "10"])
        config.credentials = Credentials(userID: uid, groupID: uid)
        config.limits.processes = .count(3)
        config.timeout = TestTime.hang
        let limited = try await run(config)
        #expect(limited.termination == .exited(0), "stderr: \(limited.standardErrorString)")
        let report = Report(limited.standardOutputString)
        let forked = try #require(report.int("forked"), "output: \(limited.standardOutputString)")
        // The probe itself counts: with 3 allowed, 2 forks. (No other process
        // has this uid: UnusedUser checked /proc.)
        #expect(forked == 2)
        #expect(report.int("errno") == EAGAIN)

        // The control: without the limit all ten forks succeed.
        config.limits.processes = nil
        let free = try await run(config)
        #expect(Report(free.standardOutputString).int("forked") == 10)
        #expect(Report(free.standardOutputString)["errno"] == nil)
    }
}

@Suite(Gate.shared)
struct EnvironmentTests {
    private func env(_ name: String, _ environment: Environment) async throws -> String {
        var config = Probe.config("env", name)
        config.environment = environment
        let result = try await run(config)
        #expect(result.termination == .exited(0))
        return result.standardOutputString
    }

    @Test func inheritsByDefault() async throws {
        let home = try #require(ProcessInfo.processInfo.environment["PATH"])
        #expect(try await env("PATH", .inherit) == home + "\n")
    }

    @Test func setAddsAndOverrides() async throws {
        #expect(try await env("ASYNCSPAWN_TEST_VAR", Environment.inherit.setting("ASYNCSPAWN_TEST_VAR", to: "a b=c")) == "a b=c\n")
        #expect(try await env("PATH", Environment.inherit.setting("PATH", to: "/nowhere")) == "/nowhere\n")
    }

    @Test func unsetRemoves() async throws {
        #expect(try await env("PATH", Environment.inherit.removing("PATH")) == "unset\n")
        var e = Environment.inherit
        e.set("X1", "1")
        e.set("X1", nil)
        #expect(try await env("X1", e) == "unset\n")
    }

    @Test func emptyValueIsSetNotUnset() async throws {
        #expect(try await env("EMPTY", Environment.inherit.setting("EMPTY", to: "")) == "\n")
    }

    @Test func customAndEmpty() async throws {
        #expect(try await env("A", .custom(["A": "1", "B": "2"])) == "1\n")
        #expect(try await env("PATH", .custom(["A": "1"])) == "unset\n")
        #expect(try await env("HOME", .empty) == "unset\n")
        #expect(try await env("Z", Environment.empty.setting("Z", to: "zz")) == "zz\n")
    }

    /// The PATH used to find the executable is the child's, not ours.
    @Test func pathLookupUsesTheChildsPATH() async throws {
        let dir = URL(fileURLWithPath: Probe.path).deletingLastPathComponent().path
        var config = Configuration(executable: "spawn-probe", arguments: ["env", "PATH"])
        config.environment = Environment.inherit.setting("PATH", to: "/nonexistent:\(dir)")
        let result = try await run(config)
        #expect(result.termination == .exited(0))
        #expect(result.standardOutputString == "/nonexistent:\(dir)\n")
    }
}

@Suite(Gate.shared)
struct WorkingDirectoryTests {
    @Test func workingDirectory() async throws {
        let dir = TempDir()
        var config = Probe.config()
        config.workingDirectory = dir.path
        let (report, _) = try await probeReport(config)
        let real = try #require(realpath(dir.path, nil))
        defer { free(real) }
        #expect(report["cwd"] == String(cString: real))
    }

    @Test func parentsDirectoryByDefault() async throws {
        let (report, _) = try await probeReport()
        #expect(report["cwd"] == FileManager.default.currentDirectoryPath)
    }
}
