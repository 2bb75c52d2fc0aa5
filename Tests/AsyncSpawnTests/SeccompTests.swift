// Seccomp filters and presets, probed by a real C program (Tests/Fixtures/sysprobe.c)
// that makes one system call and prints what the kernel answered.
import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// sysprobe (Tests/Fixtures/sysprobe.c, built once per test process with gcc) under filters.
enum SysProbe {
    static var path: String { SysProbeBinary.path }

    /// The real Python interpreter (`python3` on PATH may be a pyenv shell shim
    /// that forks, which a no-new-processes filter refuses).
    static let python: String = {
        let p = Process()
        let pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import sys; print(sys.executable)"]
        p.standardOutput = pipe
        try? p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    /// Runs sysprobe `arguments` under `filter`; returns its stdout line and the result.
    static func run(_ arguments: [String], filter: SeccompFilter?) async throws -> (line: String, result: RunResult) {
        var config = Configuration(executable: path, arguments: arguments)
        config.seccomp = filter
        config.timeout = .seconds(20)
        let result = try await AsyncSpawn.run(config)
        return (result.standardOutputString.trimmingCharacters(in: .whitespacesAndNewlines), result)
    }
}

@Suite(Gate.shared) struct SeccompTests {
    @Test func noNetworkRefusesInetButNotUnix() async throws {
        let filter = SeccompFilter.preset(.noNetwork)
        #expect(try await SysProbe.run(["socket-inet"], filter: filter).line == "socket-inet errno \(EPERM)")
        #expect(try await SysProbe.run(["socket-inet6"], filter: filter).line == "socket-inet6 errno \(EPERM)")
        #expect(try await SysProbe.run(["socket-unix"], filter: filter).line == "socket-unix ok")
        #expect(try await SysProbe.run(["socketpair-unix"], filter: filter).line == "socketpair-unix ok")
        // Without the filter, the same call works: the filter is what refused it.
        #expect(try await SysProbe.run(["socket-inet"], filter: nil).line == "socket-inet ok")
    }

    @Test func noNetworkFromPython() async throws {
        var config = Configuration(executable: "python3", arguments: ["-c", """
            import socket
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                print("inet ok")
            except PermissionError as e:
                print("inet", e.errno)
            a, b = socket.socketpair(socket.AF_UNIX)
            a.send(b"x"); print("unix", b.recv(1).decode())
            """])
        config.seccomp = .preset(.noNetwork)
        let result = try await run(config)
        #expect(result.standardOutputString == "inet \(EPERM)\nunix x\n")
    }

    @Test func noNewProcessesRefusesForkButKeepsThreads() async throws {
        let filter = SeccompFilter.preset(.noNewProcesses)
        #expect(try await SysProbe.run(["fork"], filter: filter).line == "fork errno \(EPERM)")
        #expect(try await SysProbe.run(["vfork-raw"], filter: filter).line == "vfork-raw errno \(EPERM)")
        #expect(try await SysProbe.run(["clone3"], filter: filter).line == "clone3 errno \(ENOSYS)")
        #expect(try await SysProbe.run(["thread"], filter: filter).line == "thread ok")
        #expect(try await SysProbe.run(["fork"], filter: nil).line == "fork ok")
        #expect(try await SysProbe.run(["clone3"], filter: nil).line == "clone3 errno \(EINVAL)")
    }

    @Test func noNewProcessesFromPythonAndShell() async throws {
        var config = Configuration(executable: SysProbe.python, arguments: ["-c", """
            import os, threading
            t = threading.Thread(target=lambda: None); t.start(); t.join(); print("thread ok")
            try:
                os.fork(); print("fork ok")
            except OSError as e:
                print("fork", e.errno)
            """])
        config.seccomp = .preset(.noNewProcesses)
        let result = try await run(config)
        #expect(result.standardOutputString == "thread ok\nfork \(EPERM)\n")
    }

    @Test func noProcessInspection() async throws {
        // A distinct errno proves the filter answered, not a missing capability.
        let filter = SeccompFilter.preset(.noProcessInspection, deniedWith: .errno(EHWPOISON))
        #expect(try await SysProbe.run(["ptrace"], filter: filter).line == "ptrace errno \(EHWPOISON)")
        #expect(try await SysProbe.run(["ptrace"], filter: .preset(.noProcessInspection)).line == "ptrace errno \(EPERM)")
        #expect(try await SysProbe.run(["fork"], filter: filter).line == "fork ok")
    }

    @Test func noAdministration() async throws {
        let filter = SeccompFilter.preset(.noAdministration, deniedWith: .errno(EHWPOISON))
        #expect(try await SysProbe.run(["unshare"], filter: filter).line == "unshare errno \(EHWPOISON)")
        #expect(try await SysProbe.run(["mount"], filter: filter).line == "mount errno \(EHWPOISON)")
        #expect(try await SysProbe.run(["socket-inet"], filter: filter).line == "socket-inet ok")
    }

    @Test func readOnlyFilesystem() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ro-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let existing = dir.appendingPathComponent("existing").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: existing))
        let filter = SeccompFilter.preset(.readOnlyFilesystem)
        #expect(try await SysProbe.run(["read-file", existing], filter: filter).line == "read-file ok")
        #expect(try await SysProbe.run(["write-file", existing], filter: filter).line == "write-file errno \(EPERM)")
        #expect(try await SysProbe.run(["write-file", dir.path + "/new"], filter: filter).line == "write-file errno \(EPERM)")
        #expect(try await SysProbe.run(["mkdir", dir.path + "/sub"], filter: filter).line == "mkdir errno \(EPERM)")
        #expect(try await SysProbe.run(["unlink", existing], filter: filter).line == "unlink errno \(EPERM)")
        #expect(try await SysProbe.run(["rename", existing, dir.path + "/moved"], filter: filter).line == "rename errno \(EPERM)")
        #expect(try await SysProbe.run(["stdout"], filter: filter).line == "stdout ok")
        #expect(FileManager.default.fileExists(atPath: existing))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/new"))
        #expect(try await SysProbe.run(["write-file", dir.path + "/new"], filter: nil).line == "write-file ok")
    }

    // Pids far above pid_max (at most 2^22), so the kernel's own answer is ESRCH.
    @Test(arguments: [
        (SeccompCondition.Comparison.equal, 2_000_000_100, ["2000000050": false, "2000000100": true, "2000000150": false]),
        (.notEqual, 2_000_000_100, ["2000000050": true, "2000000100": false, "2000000150": true]),
        (.less, 2_000_000_100, ["2000000050": true, "2000000100": false, "2000000150": false]),
        (.lessOrEqual, 2_000_000_100, ["2000000050": true, "2000000100": true, "2000000150": false]),
        (.greater, 2_000_000_100, ["2000000050": false, "2000000100": false, "2000000150": true]),
        (.greaterOrEqual, 2_000_000_100, ["2000000050": false, "2000000100": true, "2000000150": true]),
        (.maskedEqual(mask: 0xF0), 0x90, ["0x7fff0095": true, "0x7fff009f": true, "0x7fff00a5": false]),
    ] as [(SeccompCondition.Comparison, UInt64, [String: Bool])])
    func argumentConditions(comparison: SeccompCondition.Comparison, value: UInt64, cases: [String: Bool]) async throws {
        // getpriority(PRIO_PROCESS, who): the rule answers EHWPOISON when argument 1
        // compares; otherwise the kernel answers (ESRCH: no such pid).
        let filter = SeccompFilter(rules: [
            SeccompRule("getpriority", .errno(EHWPOISON), when: [SeccompCondition(argument: 1, comparison, value)])
        ])
        for (who, refused) in cases {
            let line = try await SysProbe.run(["getpriority", who], filter: filter).line
            #expect(line == "getpriority errno \(refused ? EHWPOISON : ESRCH)", "who=\(who)")
        }
    }

    @Test func compositionOfPresetsAndCustomRules() async throws {
        var filter = SeccompFilter.preset(.noNetwork).merging(.preset(.noNewProcesses))
        filter.rules.append(SeccompRule("mkdir", .errno(EACCES)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-\(UUID().uuidString)").path
        #expect(try await SysProbe.run(["socket-inet"], filter: filter).line == "socket-inet errno \(EPERM)")
        #expect(try await SysProbe.run(["fork"], filter: filter).line == "fork errno \(EPERM)")
        #expect(try await SysProbe.run(["mkdir", dir], filter: filter).line == "mkdir errno \(EACCES)")
        #expect(try await SysProbe.run(["thread"], filter: filter).line == "thread ok")
    }

    @Test func killActionEndsWithSeccompViolation() async throws {
        let filter = SeccompFilter.preset(.noNetwork, deniedWith: .killProcess)
        let (line, result) = try await SysProbe.run(["socket-inet"], filter: filter)
        #expect(line == "")
        #expect(result.termination == .signaled(.badSystemCall))
        #expect(result.outcome == .seccompViolation)
        // Without a filter, a child killed by SIGSYS is merely signaled.
        var config = Configuration(executable: "sh", arguments: ["-c", "kill -SYS $$"])
        config.timeout = .seconds(10)
        let plain = try await run(config)
        #expect(plain.termination == .signaled(.badSystemCall))
        #expect(plain.outcome == .signaled)
    }

    #if arch(x86_64)
    @Test func foreignArchitectureCallsDoNotBypass() async throws {
        // Without a filter the i386 socket call works; under noNetwork the
        // architecture check kills the process instead of letting it through.
        #expect(try await SysProbe.run(["int80-socket"], filter: nil).line == "int80-socket ok")
        let (line, result) = try await SysProbe.run(["int80-socket"], filter: .preset(.noNetwork))
        #expect(line == "")
        #expect(result.termination == .signaled(.badSystemCall))
        #expect(result.outcome == .seccompViolation)
        let x32 = try await SysProbe.run(["x32-getpid"], filter: .preset(.noNetwork))
        #expect(x32.result.termination == .signaled(.badSystemCall))
    }
    #endif

    @Test func compiledOnceForTheSameFilter() async throws {
        let filter = SeccompFilter.deny(["swapon", "acct", "syslog"], with: .errno(EXDEV))
        #expect(SeccompFilter.compilationCount(of: filter) == 0)
        let first = try filter.compile()
        #expect(SeccompFilter.compilationCount(of: filter) == 1)
        let second = try filter.compile()
        #expect(first == second)
        #expect(first.bytes.count % 8 == 0 && !first.bytes.isEmpty)
        // Spawning with the filter again and again uses the cached program.
        for _ in 0..<3 {
            var config = Configuration(executable: "true")
            config.seccomp = filter
            #expect(try await run(config).termination == .exited(0))
        }
        #expect(SeccompFilter.compilationCount(of: filter) == 1)
        // An equal value built separately hits the same cache entry.
        let rebuilt = SeccompFilter(defaultAction: .allow, rules: ["swapon", "acct", "syslog"].map { SeccompRule($0, .errno(EXDEV)) })
        _ = try rebuilt.compile()
        #expect(SeccompFilter.compilationCount(of: filter) == 1)
    }

    @Test func errorsNameTheCulprit() async throws {
        do {
            _ = try SeccompFilter.deny(["socket", "no_such_call"]).compile()
            Issue.record("expected an error")
        } catch {
            // compile() throws(SpawnError): `error` is a SpawnError. (`catch let
            // error as SpawnError` here crashes the Swift 6.3.1 compiler.)
            #expect(error.code == .seccomp)
            #expect(error.message.contains("no_such_call"))
        }
        do {
            _ = try SeccompFilter(rules: [SeccompRule("kill", .errno(EPERM), when: [SeccompCondition(argument: 7, .equal, 1)])]).compile()
            Issue.record("expected an error")
        } catch {
            // compile() throws(SpawnError): `error` is a SpawnError. (`catch let
            // error as SpawnError` here crashes the Swift 6.3.1 compiler.)
            #expect(error.code == .seccomp)
            #expect(error.message.contains("kill") && error.message.contains("7"))
        }
        // Rejected before any child exists: the spawn throws, nothing is left behind.
        var config = Configuration(executable: "true")
        config.seccomp = .deny(["definitely_not_a_syscall"])
        await #expect(throws: SpawnError.self) { _ = try await run(config) }
    }

    @Test func filterImpliesNoNewPrivileges() async throws {
        var config = Configuration(executable: "grep", arguments: ["NoNewPrivs", "/proc/self/status"])
        config.seccomp = .deny(["acct"])
        let result = try await run(config)
        #expect(result.standardOutputString.contains("1"))
        config.seccomp = nil
        let plain = try await run(config)
        #expect(plain.standardOutputString.contains("0"))
    }
}
