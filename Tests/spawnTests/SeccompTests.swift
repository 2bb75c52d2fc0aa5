// The seccomp options: presets, --deny, --seccomp-action.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Seccomp")
struct SeccompTests {
    static let socketProbe = """
        import socket
        for name, family in [("inet", socket.AF_INET), ("inet6", socket.AF_INET6), ("netlink", socket.AF_NETLINK), ("unix", socket.AF_UNIX)]:
            try:
                socket.socket(family, socket.SOCK_STREAM if family != socket.AF_NETLINK else socket.SOCK_RAW).close()
                print(name, "ok")
            except OSError as e:
                print(name, e.errno)
        a, b = socket.socketpair()
        a.sendall(b"x"); print("socketpair", b.recv(1).decode())
        """

    @Test("--seccomp no-network: socket() fails with EPERM except for AF_UNIX")
    func noNetwork() throws {
        let r = CLI.spawn(["--json", "--seccomp", "no-network", CLI.python, "-c", Self.socketProbe])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        #expect(report.stdout == "inet 1\ninet6 1\nnetlink 1\nunix ok\nsocketpair x\n", "\(r)")

        let without = CLI.spawn(["--json", CLI.python, "-c", Self.socketProbe])
        #expect(try checkedReport(without).stdout.hasPrefix("inet ok\n"), "\(without)")
    }

    @Test("--seccomp no-network: the contract's Python example gets PermissionError")
    func noNetworkPermissionError() throws {
        let r = CLI.spawn([
            "--seccomp", "no-network", CLI.python, "-c",
            "import socket\ntry:\n  socket.socket()\nexcept PermissionError as e:\n  print('PermissionError', e.errno)",
        ])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "PermissionError 1\n")
    }

    @Test("--seccomp no-new-processes: fork fails, threads work")
    func noNewProcesses() throws {
        let shell = CLI.spawn(["--json", "--seccomp", "no-new-processes", "sh", "-c", "true | true; echo survived"])
        let sr = try checkedReport(shell)
        #expect(sr.exit_code != 0, "sh could fork: \(shell)")
        #expect(!sr.stdout.contains("survived"))
        #expect(sr.stderr.lowercased().contains("fork"), "\(shell)")

        let probe = """
            import os, threading, subprocess
            try:
                os.fork(); print("fork ok")
            except OSError as e:
                print("fork", e.errno)
            try:
                subprocess.run(["/bin/true"]); print("subprocess ok")
            except OSError as e:
                print("subprocess", e.errno)
            t = threading.Thread(target=lambda: print("thread ran")); t.start(); t.join()
            print("ok")
            """
        let r = CLI.spawn(["--json", "--seccomp", "no-new-processes", CLI.python, "-c", probe])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        #expect(report.stdout == "fork 1\nsubprocess 1\nthread ran\nok\n", "\(r)")
    }

    @Test("the contract's thread example runs under no-new-processes")
    func threadsWork() {
        let r = CLI.spawn(["--seccomp", "no-new-processes", CLI.python, "-c",
                           "import threading; t=threading.Thread(target=lambda:None); t.start(); t.join(); print(\"ok\")"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "ok\n")
    }

    @Test("--seccomp is repeatable: the presets compose")
    func composePresets() throws {
        let probe = """
            import os, socket
            try: socket.socket(); print("socket ok")
            except OSError as e: print("socket", e.errno)
            try: os.fork(); print("fork ok")
            except OSError as e: print("fork", e.errno)
            """
        let r = CLI.spawn(["--json", "--seccomp", "no-network", "--seccomp", "no-new-processes", CLI.python, "-c", probe])
        #expect(try checkedReport(r).stdout == "socket 1\nfork 1\n", "\(r)")
    }

    @Test("--deny mkdir: mkdir fails with EPERM")
    func denyMkdir() throws {
        let dir = TempDir()
        let target = dir.file("x")
        let r = CLI.spawn(["--json", "--deny", "mkdir", "mkdir", target])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited")
        #expect(report.exit_code != 0, "\(r)")
        #expect(report.stderr.contains("Operation not permitted"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: target))

        let allowed = CLI.spawn(["--deny", "rmdir", "mkdir", target])
        #expect(allowed.status == 0, "\(allowed)")
        #expect(FileManager.default.fileExists(atPath: target))
    }

    @Test("--deny takes a comma list and is repeatable; the child sees errno EPERM")
    func denyList() throws {
        let dir = TempDir()
        let probe = """
            import os, sys
            d = sys.argv[1]
            for name, f in [("mkdir", lambda: os.mkdir(d + "/a")), ("symlink", lambda: os.symlink("t", d + "/l")),
                            ("rename", lambda: os.rename(d + "/f", d + "/g")), ("getpid", lambda: os.getpid())]:
                try: f(); print(name, "ok")
                except OSError as e: print(name, e.errno)
            """
        dir.write("f", "x")
        let r = CLI.spawn(["--json", "--deny", "mkdir,mkdirat,symlink", "--deny", "symlinkat", "--deny", "rename,renameat,renameat2",
                           CLI.python, "-c", probe, dir.path])
        let report = try checkedReport(r)
        #expect(report.stdout == "mkdir 1\nsymlink 1\nrename 1\ngetpid ok\n", "\(r)")
    }

    @Test("--seccomp-action errno is the default; kill ends the child by SIGSYS")
    func seccompAction() throws {
        let dir = TempDir()
        let errnoRun = CLI.spawn(["--json", "--deny", "mkdir,mkdirat", "--seccomp-action", "errno", "mkdir", dir.file("a")])
        let er = try checkedReport(errnoRun)
        #expect(er.outcome == "exited")
        #expect(er.stderr.contains("Operation not permitted"), "\(errnoRun)")

        let killRun = CLI.spawn(["--json", "--deny", "mkdir,mkdirat", "--seccomp-action", "kill", "mkdir", dir.file("b")])
        let kr = try checkedReport(killRun)
        #expect(kr.outcome == "seccomp_violation", "\(killRun)")
        #expect(kr.signal == Int(SIGSYS))
        #expect(killRun.status == 128 + SIGSYS)
        #expect(!FileManager.default.fileExists(atPath: dir.file("b")))
    }

    @Test("a child that makes no denied call is unaffected by the filter")
    func unaffected() throws {
        let r = CLI.spawn(["--json", "--seccomp", "no-network", "--seccomp", "no-new-processes", "--deny", "mkdir",
                           "--seccomp-action", "kill", "printf", "fine"])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited")
        #expect(report.stdout == "fine")
    }

    // MARK: Preset bypasses (security review, issue 11, item 4)

    /// sysprobe (Tests/Fixtures/sysprobe.c) run by spawn with these options; its one line.
    private func probe(_ options: [String], _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = CLI.spawn(["--json"] + options + [SysProbeBinary.path] + arguments)
        let report = try checkedReport(r, sourceLocation: sourceLocation)
        #expect(report.outcome == "exited", "\(r)", sourceLocation: sourceLocation)
        return report.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("--deny accepts system calls newer than libseccomp (setxattrat) and refuses them; unknown names stay usage errors")
    func denyNewerThanLibseccomp() throws {
        // On the main of 2026-12-03: "unknown system call 'setxattrat' in --deny", exit 125.
        let dir = TempDir()
        let file = dir.write("f", "x")
        #expect(try probe(["--deny", "setxattrat"], ["setxattrat", file, "user.k", "v"]) == "setxattrat errno \(EPERM)")
        #expect(try probe([], ["getxattr", file, "user.k"]) == "getxattr errno \(ENODATA)")
        #expect(try probe(["--deny", "file_setattr,removexattrat,open_tree_attr"], ["removexattrat", file, "user.k"])
                == "removexattrat errno \(EPERM)")
        let unknown = CLI.spawn(["--deny", "setxattrat,setxattrat2", "true"])
        #expect(unknown.status == 125, "\(unknown)")
        #expect(unknown.stderrString.contains("setxattrat2"), "\(unknown)")
    }

    @Test("every --seccomp preset refuses io_uring: no file is created through IORING_OP_OPENAT")
    func presetsRefuseIoUring() throws {
        // On the main of 2026-12-03 only no-network refused io_uring_setup: under
        // read-only-filesystem (and the three others) the ring created and wrote the file.
        let dir = TempDir()
        #expect(try probe([], ["io_uring-write", dir.file("unfiltered")]) == "io_uring-write ok")
        #expect(FileManager.default.contents(atPath: dir.file("unfiltered")) == Data("io_uring\n".utf8))
        for preset in ["no-network", "no-new-processes", "no-process-inspection", "no-administration", "read-only-filesystem"] {
            #expect(try probe(["--seccomp", preset], ["io_uring-write", dir.file(preset)]) == "io_uring-write errno \(EPERM)", "\(preset)")
            #expect(!FileManager.default.fileExists(atPath: dir.file(preset)), "\(preset)")
        }
    }

    @Test("--seccomp read-only-filesystem refuses fchmodat2, setxattrat, removexattrat and file_setattr")
    func readOnlyFilesystemNewCalls() throws {
        // On the main of 2026-12-03 all four went through: the mode became 600 and the
        // attribute was set.
        let dir = TempDir()
        let file = dir.write("f", "x", mode: 0o644)
        let ro = ["--seccomp", "read-only-filesystem"]
        #expect(try probe(ro, ["fchmodat2", file, "600"]) == "fchmodat2 errno \(EPERM)")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o644)
        #expect(try probe([], ["fchmodat2", file, "600"]) == "fchmodat2 ok")
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try probe(ro, ["setxattrat", file, "user.k", "v"]) == "setxattrat errno \(EPERM)")
        #expect(try probe(ro, ["removexattrat", file, "user.k"]) == "removexattrat errno \(EPERM)")
        #expect(try probe(ro, ["file_setattr-nodump", file]) == "file_setattr-nodump errno \(EPERM)")
        if try probe([], ["setxattrat", file, "user.k", "v"]) != "setxattrat errno \(ENOSYS)" {  // kernels before 6.13
            #expect(try probe([], ["getxattr", file, "user.k"]) == "getxattr v")
        }
    }

    @Test("--seccomp no-administration refuses clone with namespace flags, clone3 (ENOSYS) and open_tree_attr")
    func noAdministrationNamespaces() throws {
        // On the main of 2026-12-03 clone(CLONE_NEWUSER|CLONE_NEWNET) and clone3 with
        // CLONE_NEWUSER made namespaces under no-administration, and open_tree_attr made
        // a detached copy of a mount.
        let dir = TempDir()
        let admin = ["--seccomp", "no-administration"]
        if getuid() == 0 {
            #expect(try probe([], ["clone-flags", "0x50000000"]) == "clone-flags ok")
            #expect(try probe([], ["clone3-newuser"]) == "clone3-newuser ok")
            #expect(try probe([], ["open_tree_attr", dir.path]) == "open_tree_attr ok")
        }
        #expect(try probe(admin, ["clone-flags", "0x50000000"]) == "clone-flags errno \(EPERM)")
        #expect(try probe(admin, ["clone3-newuser"]) == "clone3-newuser errno \(ENOSYS)")
        #expect(try probe(admin + ["--seccomp-action", "kill"], ["clone3-newuser"]) == "clone3-newuser errno \(ENOSYS)")
        #expect(try probe(admin, ["open_tree_attr", dir.path]) == "open_tree_attr errno \(EPERM)")
        #expect(try probe(admin, ["fork"]) == "fork ok")
        #expect(try probe(admin, ["thread"]) == "thread ok")
    }
}
