// Seccomp filters and presets, probed by a real C program (Tests/Fixtures/sysprobe.c)
// that makes one system call and prints what the kernel answered.
@testable import AsyncSpawn
import CSeccomp
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

// MARK: - Preset bypasses (security review, issue 11, item 4)

// Each test below does a bypass for real: sysprobe makes the call without a filter
// (it works, and changes the file), then under the preset (it is refused, and the
// file is unchanged). A distinct errno (EHWPOISON) where EPERM could also be the
// kernel's own answer shows that the filter answered.
extension SeccompTests {
    /// A fresh directory under the temporary directory, removed by the caller.
    private func scratch(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    private func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    #if arch(x86_64)
    @Test func tableMatchesKernelHeaders() throws {
        // On the main of 2026-12-03 there was no table: names libseccomp 2.5.4 does
        // not know (setxattrat, 463) could not be used at all.
        let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
        let text = try String(contentsOfFile: header, encoding: .utf8)
        var defined: [String: Int32] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "#define", parts[1].hasPrefix("__NR_"), let n = Int32(parts[2]) else { continue }
            defined[String(parts[1].dropFirst(5))] = n
        }
        #expect(defined["clone3"] == 435, "parsed \(defined.count) numbers from \(header)")
        let table = SyscallTable.common
        #expect(table.map(\.number) == (0..<table.count).map { Int32(424 + $0) }, "one entry per number, in order")
        #expect(Set(table.map(\.name)).count == table.count)
        for (name, number) in table {
            #expect(number >= 424, "\(name)")
            if let fromHeader = defined[name] {
                #expect(fromHeader == number, "\(name): table \(number), \(header) \(fromHeader)")
            }
            // libseccomp's own tables, where it knows the call, for both architectures
            // (aarch64 cannot run here, but its numbers can be checked).
            // SCMP_ARCH_X86_64 and SCMP_ARCH_AARCH64 (AUDIT_ARCH_*; the C macros are not
            // visible to Swift).
            for arch: UInt32 in [0xC000_003E, 0xC000_00B7] {
                let known = seccomp_syscall_resolve_name_arch(arch, name)
                if known >= 0 { #expect(known == number, "\(name) on arch \(arch): libseccomp \(known)") }
            }
            #expect(SeccompFilter.isKnownSyscall(name), "\(name)")
        }
        // Everything the headers define from 424 on is in the table.
        for (name, number) in defined where number >= 424 {
            #expect(table.contains { $0.name == name && $0.number == number }, "\(name) (\(number)) is missing from the table")
        }
    }
    #endif

    @Test func callsNewerThanLibseccompAreDeniedByNumber() async throws {
        // On the main of 2026-12-03: "seccomp: unknown system call 'setxattrat'" (libseccomp
        // 2.5.4 stops at 456), so the call could not be denied at all.
        for name in ["setxattrat", "getxattrat", "removexattrat", "open_tree_attr", "file_setattr", "mseal"] {
            #expect(SeccompFilter.isKnownSyscall(name), "\(name)")
        }
        #expect(!SeccompFilter.isKnownSyscall("no_such_call"))
        #expect(!SeccompFilter.isKnownSyscall("socketcall"))  // a libseccomp pseudo-call on x86_64
        let dir = try scratch("xattr-deny")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("f").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let filter = SeccompFilter.deny(["setxattrat"], with: .errno(EHWPOISON))
        #expect(try await SysProbe.run(["setxattrat", file, "user.k", "v"], filter: filter).line == "setxattrat errno \(EHWPOISON)")
        #expect(try await SysProbe.run(["getxattr", file, "user.k"], filter: nil).line == "getxattr errno \(ENODATA)")
        // An unknown name is still an error that names it.
        do {
            _ = try SeccompFilter.deny(["setxattrat", "setxattrat2"]).compile()
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .seccomp)
            #expect(error.message == "seccomp: unknown system call 'setxattrat2'")
        }
    }

    @Test func everyPresetRefusesIoUring() async throws {
        // On the main of 2026-12-03 only noNetwork refused io_uring_setup: under the
        // four others, an IORING_OP_OPENAT with O_CREAT and an IORING_OP_WRITE created
        // and wrote the file (readOnlyFilesystem included).
        let dir = try scratch("io_uring")
        defer { try? FileManager.default.removeItem(at: dir) }
        let bare = dir.appendingPathComponent("unfiltered").path
        #expect(try await SysProbe.run(["io_uring-write", bare], filter: nil).line == "io_uring-write ok")
        #expect(FileManager.default.contents(atPath: bare) == Data("io_uring\n".utf8))
        for preset in SeccompPreset.allCases {
            let path = dir.appendingPathComponent(preset.name).path
            let line = try await SysProbe.run(["io_uring-write", path], filter: .preset(preset)).line
            #expect(line == "io_uring-write errno \(EPERM)", "\(preset)")
            #expect(!FileManager.default.fileExists(atPath: path), "\(preset) let io_uring create \(path)")
            // A ring inherited from elsewhere cannot be used either.
            let names = Set(SeccompFilter.preset(preset).rules.map(\.syscall))
            #expect(names.isSuperset(of: ["io_uring_setup", "io_uring_enter", "io_uring_register"]), "\(preset)")
        }
    }

    @Test func readOnlyFilesystemRefusesFchmodat2() async throws {
        // On the main of 2026-12-03 fchmodat2 (452) was not in the preset: the mode
        // changed to 600 under readOnlyFilesystem.
        let dir = try scratch("fchmodat2")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("f").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o644)
        #expect(try await SysProbe.run(["fchmodat2", file, "600"], filter: nil).line == "fchmodat2 ok")
        #expect(mode(file) == 0o600)
        chmod(file, 0o644)
        let filter = SeccompFilter.preset(.readOnlyFilesystem)
        #expect(try await SysProbe.run(["fchmodat2", file, "600"], filter: filter).line == "fchmodat2 errno \(EPERM)")
        #expect(mode(file) == 0o644)
    }

    @Test func readOnlyFilesystemRefusesXattrAtCalls() async throws {
        // On the main of 2026-12-03 setxattrat (463) and removexattrat (466) were not in
        // the preset (libseccomp 2.5.4 cannot name them): both changed the file.
        let dir = try scratch("xattrat")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("f").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let filter = SeccompFilter.preset(.readOnlyFilesystem)
        let unfiltered = try await SysProbe.run(["setxattrat", file, "user.k", "before"], filter: nil).line
        if unfiltered == "setxattrat errno \(ENOSYS)" {
            // A kernel older than 6.13: only the filter's answer can be checked (seccomp
            // answers before the kernel looks the call up).
            #expect(try await SysProbe.run(["setxattrat", file, "user.k", "after"], filter: filter).line == "setxattrat errno \(EPERM)")
            #expect(try await SysProbe.run(["removexattrat", file, "user.k"], filter: filter).line == "removexattrat errno \(EPERM)")
            return
        }
        #expect(unfiltered == "setxattrat ok")
        #expect(try await SysProbe.run(["getxattr", file, "user.k"], filter: nil).line == "getxattr before")
        #expect(try await SysProbe.run(["setxattrat", file, "user.k", "after"], filter: filter).line == "setxattrat errno \(EPERM)")
        #expect(try await SysProbe.run(["removexattrat", file, "user.k"], filter: filter).line == "removexattrat errno \(EPERM)")
        #expect(try await SysProbe.run(["getxattr", file, "user.k"], filter: nil).line == "getxattr before")
        #expect(try await SysProbe.run(["removexattrat", file, "user.k"], filter: nil).line == "removexattrat ok")
        #expect(try await SysProbe.run(["getxattr", file, "user.k"], filter: nil).line == "getxattr errno \(ENODATA)")
    }

    @Test func readOnlyFilesystemRefusesFileSetattr() async throws {
        // On the main of 2026-12-03 file_setattr (469) was not in the preset: it set
        // FS_XFLAG_NODUMP (chattr +d) under readOnlyFilesystem.
        let dir = try scratch("file_setattr")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("unfiltered").path, second = dir.appendingPathComponent("filtered").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: first))
        try Data("x".utf8).write(to: URL(fileURLWithPath: second))
        let filter = SeccompFilter.preset(.readOnlyFilesystem)
        let unfiltered = try await SysProbe.run(["file_setattr-nodump", first], filter: nil).line
        if unfiltered == "file_setattr-nodump errno \(ENOSYS)" {
            // A kernel older than 6.17 (file_getattr fails first): only the filter's answer.
            #expect(try await SysProbe.run(["file_setattr-nodump", second], filter: filter).line != "file_setattr-nodump ok")
            return
        }
        #expect(unfiltered == "file_setattr-nodump ok")
        #expect(try await SysProbe.run(["file_getattr", first], filter: nil).line == "file_getattr xflags 0x80")
        #expect(try await SysProbe.run(["file_setattr-nodump", second], filter: filter).line == "file_setattr-nodump errno \(EPERM)")
        #expect(try await SysProbe.run(["file_getattr", second], filter: nil).line == "file_getattr xflags 0x0")
    }

    @Test func readOnlyFilesystemRefusesInodeFlagsThroughIoctl() async throws {
        // On the main of 2026-12-03 (and after the first fix of item 4) FS_IOC_SETFLAGS
        // on a descriptor opened read-only set FS_NODUMP_FL (chattr +d) under
        // readOnlyFilesystem: what file_setattr does, through ioctl.
        let dir = try scratch("ioctl-setflags")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("unfiltered").path, second = dir.appendingPathComponent("filtered").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: first))
        try Data("x".utf8).write(to: URL(fileURLWithPath: second))
        let unfiltered = try await SysProbe.run(["ioctl-setflags-nodump", first], filter: nil).line
        guard unfiltered == "ioctl-setflags-nodump ok" else {
            // A file system without inode flags (tmpfs before 6.0): nothing to bypass.
            #expect(unfiltered.hasPrefix("ioctl-setflags-nodump errno"))
            return
        }
        #expect(try await SysProbe.run(["ioctl-getflags", first], filter: nil).line == "ioctl-getflags 0x40")
        let filter = SeccompFilter.preset(.readOnlyFilesystem)
        #expect(try await SysProbe.run(["ioctl-setflags-nodump", second], filter: filter).line
                == "ioctl-setflags-nodump errno \(EPERM)")
        #expect(try await SysProbe.run(["ioctl-getflags", second], filter: nil).line == "ioctl-getflags 0x0")
    }

    @Test func noAdministrationRefusesOpenTreeAttr() async throws {
        // On the main of 2026-12-03 open_tree_attr (467) was not in the preset: as root
        // it made a detached, read-write copy of a mount under noAdministration.
        let dir = try scratch("open_tree_attr")
        defer { try? FileManager.default.removeItem(at: dir) }
        if getuid() == 0 {
            #expect(try await SysProbe.run(["open_tree_attr", dir.path], filter: nil).line == "open_tree_attr ok")
        }
        let marked = SeccompFilter.preset(.noAdministration, deniedWith: .errno(EHWPOISON))
        #expect(try await SysProbe.run(["open_tree_attr", dir.path], filter: marked).line == "open_tree_attr errno \(EHWPOISON)")
        #expect(try await SysProbe.run(["open_tree_attr", dir.path], filter: .preset(.noAdministration)).line == "open_tree_attr errno \(EPERM)")
    }

    @Test func noAdministrationRefusesNamespaceFlagsOfClone() async throws {
        // On the main of 2026-12-03 unshare and setns were refused but
        // clone(CLONE_NEWUSER|CLONE_NEWNET) made the namespaces under noAdministration.
        let userAndNet = "0x50000000"  // CLONE_NEWUSER|CLONE_NEWNET
        if getuid() == 0 {
            #expect(try await SysProbe.run(["clone-flags", userAndNet], filter: nil).line == "clone-flags ok")
        }
        #expect(try await SysProbe.run(["clone-flags", userAndNet], filter: .preset(.noAdministration)).line == "clone-flags errno \(EPERM)")
        // Each flag alone is refused, by the filter (EHWPOISON).
        let marked = SeccompFilter.preset(.noAdministration, deniedWith: .errno(EHWPOISON))
        for flag in ["0x20000", "0x2000000", "0x4000000", "0x8000000", "0x10000000", "0x20000000", "0x40000000"] {
            #expect(try await SysProbe.run(["clone-flags", flag], filter: marked).line == "clone-flags errno \(EHWPOISON)", "flags \(flag)")
        }
        // A plain clone (fork), fork(3) and threads still work.
        #expect(try await SysProbe.run(["clone-flags", "0"], filter: marked).line == "clone-flags ok")
        #expect(try await SysProbe.run(["fork"], filter: marked).line == "fork ok")
        #expect(try await SysProbe.run(["thread"], filter: marked).line == "thread ok")
    }

    @Test func noAdministrationRefusesClone3() async throws {
        // On the main of 2026-12-03 clone3 was allowed under noAdministration: a
        // clone3 with CLONE_NEWUSER (its flags are in memory, out of BPF's sight) made
        // a user namespace.
        if getuid() == 0 {
            #expect(try await SysProbe.run(["clone3-newuser"], filter: nil).line == "clone3-newuser ok")
        }
        let filter = SeccompFilter.preset(.noAdministration)
        #expect(try await SysProbe.run(["clone3-newuser"], filter: filter).line == "clone3-newuser errno \(ENOSYS)")
        // ENOSYS whatever the action: libc falls back to clone, which the filter reads.
        let killing = SeccompFilter.preset(.noAdministration, deniedWith: .killProcess)
        #expect(try await SysProbe.run(["clone3-newuser"], filter: killing).line == "clone3-newuser errno \(ENOSYS)")
        #expect(try await SysProbe.run(["thread"], filter: killing).line == "thread ok")
    }

    @Test func mergedPresetsCompileAndKeepEveryRule() async throws {
        // Presets now share rules (io_uring in all, clone3 ENOSYS in two): every
        // combination must still compile, with one action or mixed actions. On the
        // main of 2026-12-03 all five merged allowed fchmodat2 and open_tree_attr.
        let all = SeccompPreset.allCases
        for mask in 1..<(1 << all.count) {
            let chosen = all.indices.filter { mask & (1 << $0) != 0 }.map { all[$0] }
            for actions in [[SeccompAction.errno(EPERM)], [.killProcess], [.errno(EPERM), .killProcess, .errno(EACCES)]] {
                var filter = SeccompFilter()
                for (i, preset) in chosen.enumerated() {
                    filter = filter.merging(.preset(preset, deniedWith: actions[i % actions.count]))
                }
                #expect(throws: Never.self, "\(chosen) \(actions)") { _ = try filter.compile() }
            }
        }
        var merged = SeccompFilter()
        for preset in all { merged = merged.merging(.preset(preset)) }
        let dir = try scratch("merged")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("f").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try await SysProbe.run(["fchmodat2", file, "600"], filter: merged).line == "fchmodat2 errno \(EPERM)")
        #expect(try await SysProbe.run(["open_tree_attr", dir.path], filter: merged).line == "open_tree_attr errno \(EPERM)")
        #expect(try await SysProbe.run(["io_uring-write", dir.path + "/new"], filter: merged).line == "io_uring-write errno \(EPERM)")
        #expect(try await SysProbe.run(["clone3-newuser"], filter: merged).line == "clone3-newuser errno \(ENOSYS)")
        #expect(try await SysProbe.run(["thread"], filter: merged).line == "thread ok")
    }
}
