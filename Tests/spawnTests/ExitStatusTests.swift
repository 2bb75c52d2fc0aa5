// Exit status of `spawn` (timeout(1) and env(1) conventions), with and without --json.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Exit status")
struct ExitStatusTests {
    @Test("the child's exit code is spawn's exit code", arguments: [0, 1, 7, 42, 255])
    func exitCodePassthrough(code: Int) throws {
        let plain = CLI.spawn(["sh", "-c", "exit \(code)"])
        #expect(plain.status == Int32(code), "\(plain)")
        #expect(plain.stdout.isEmpty && plain.stderr.isEmpty, "nothing else is printed on success: \(plain)")

        let json = CLI.spawn(["--json", "sh", "-c", "exit \(code)"])
        #expect(json.status == Int32(code), "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "exited")
        #expect(report.exit_code == code)
        #expect(report.signal == nil)
    }

    @Test("true and false")
    func trueFalse() {
        #expect(CLI.spawn(["true"]).status == 0)
        #expect(CLI.spawn(["false"]).status == 1)
    }

    @Test("124 when the timeout expires")
    func timeout() throws {
        let timeout = Duration.milliseconds(300)
        let plain = CLI.spawn(["--timeout", "0.3", "sleep", TestTime.childSleep])
        #expect(plain.status == 124, "\(plain)")
        #expect(plain.elapsed < TestTime.endsBy(timeout).inSeconds, "\(plain)")

        let json = CLI.spawn(["--json", "--timeout", "0.3", "sleep", TestTime.childSleep])
        #expect(json.status == 124, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "timed_out")
        #expect(report.exit_code == nil)
        #expect(report.signal == Int(SIGTERM))
        #expect(report.wall_time_ms >= TestTime.notBefore(timeout).inSeconds * 1000
                    && report.wall_time_ms < TestTime.endsBy(timeout).inSeconds * 1000, "\(json)")
    }

    @Test("128+N when signal N ended the child", arguments: [(9, "KILL"), (15, "TERM"), (6, "ABRT"), (10, "USR1")])
    func signaled(signal: Int, name: String) throws {
        let plain = CLI.spawn(["sh", "-c", "kill -\(name) $$"])
        #expect(plain.status == Int32(128 + signal), "\(plain)")

        let json = CLI.spawn(["--json", "sh", "-c", "kill -\(name) $$"])
        #expect(json.status == Int32(128 + signal), "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "signaled")
        #expect(report.signal == signal)
        #expect(report.exit_code == nil)
        #expect(report.error == nil)
    }

    @Test("127 when the executable is not in PATH; error.step is resolve")
    func notFoundInPath() throws {
        let name = "no-such-command-\(UInt32.random(in: 0...UInt32.max))"
        let plain = CLI.spawn([name])
        #expect(plain.status == 127, "\(plain)")
        #expect(plain.stdout.isEmpty)
        #expect(!plain.stderr.isEmpty, "a failure says why on stderr")

        let json = CLI.spawn(["--json", name])
        #expect(json.status == 127, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "resolve")
        #expect(report.error?.errno == Int(ENOENT))
        #expect(report.exit_code == nil && report.signal == nil)
    }

    @Test("127 for a missing absolute path; error.step exec, errno 2")
    func missingPath() throws {
        let dir = TempDir()
        let path = dir.file("missing")
        let plain = CLI.spawn([path])
        #expect(plain.status == 127, "\(plain)")

        let json = CLI.spawn(["--json", path])
        #expect(json.status == 127, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "exec")
        #expect(report.error?.errno == 2)
        #expect(report.error?.message == "No such file or directory")
    }

    @Test("PATH is the child's: --env PATH=... decides where EXECUTABLE is found")
    func lookupUsesChildPath() throws {
        let dir = TempDir()
        dir.write("only-here", "#!/bin/sh\necho found-in-child-path\n", mode: 0o755)
        let found = CLI.spawn(["--env", "PATH=\(dir.path):/usr/bin:/bin", "only-here"])
        #expect(found.status == 0, "\(found)")
        #expect(found.stdoutString == "found-in-child-path\n")

        // sh is in spawn's PATH but not in the child's.
        let json = CLI.spawn(["--json", "--env", "PATH=\(dir.path)", "sh", "-c", "true"])
        #expect(json.status == 127, "\(json)")
        let report = try checkedReport(json)
        #expect(report.error?.step == "resolve")
    }

    @Test("PATH lookup skips a non-executable match")
    func lookupSkipsNonExecutable() {
        let first = TempDir(), second = TempDir()
        first.write("tool", "#!/bin/sh\necho wrong\n", mode: 0o644)
        second.write("tool", "#!/bin/sh\necho right\n", mode: 0o755)
        let r = CLI.spawn(["--env", "PATH=\(first.path):\(second.path):/usr/bin:/bin", "tool"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "right\n")
    }

    @Test("126 for a file without execute permission (EACCES)")
    func notExecutable() throws {
        let dir = TempDir()
        let path = dir.write("script", "#!/bin/sh\necho ran\n", mode: 0o644)
        let plain = CLI.spawn([path])
        #expect(plain.status == 126, "\(plain)")
        #expect(plain.stdout.isEmpty)

        let json = CLI.spawn(["--json", path])
        #expect(json.status == 126, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "exec")
        #expect(report.error?.errno == Int(EACCES))
    }

    @Test("126 for a directory")
    func directory() throws {
        let dir = TempDir()
        let plain = CLI.spawn([dir.path])
        #expect(plain.status == 126, "\(plain)")
        let json = CLI.spawn(["--json", dir.path])
        #expect(json.status == 126, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "exec")
        #expect(report.error?.errno == Int(EACCES))
    }

    @Test("126 for an executable file exec refuses (ENOEXEC), with no fallback to /bin/sh")
    func execFormatError() throws {
        let dir = TempDir()
        // Valid shell, no #! line: execvp would run it with /bin/sh; spawn must not.
        let path = dir.write("noshebang", "echo fallback-ran\n", mode: 0o755)
        let plain = CLI.spawn([path])
        #expect(plain.status == 126, "\(plain)")
        #expect(!plain.stdoutString.contains("fallback-ran"))

        let json = CLI.spawn(["--json", path])
        #expect(json.status == 126, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "exec")
        #expect(report.error?.errno == Int(ENOEXEC))
        #expect(!report.stdout.contains("fallback-ran"))

        // The same through a PATH lookup.
        let viaPath = CLI.spawn(["--env", "PATH=\(dir.path):/usr/bin:/bin", "noshebang"])
        #expect(viaPath.status == 126, "\(viaPath)")
        #expect(!viaPath.stdoutString.contains("fallback-ran"))

        // Garbage bytes.
        let garbage = dir.write("garbage", "\u{7}\u{1}\u{2}binary junk\u{0}\u{0}", mode: 0o755)
        let g = CLI.spawn(["--json", garbage])
        #expect(g.status == 126, "\(g)")
        #expect(try checkedReport(g).error?.errno == Int(ENOEXEC))
    }

    @Test("125 and spawn_failed/chdir for a missing --cwd")
    func missingCwd() throws {
        let dir = TempDir()
        let missing = dir.file("nonexistent")
        let plain = CLI.spawn(["--cwd", missing, "true"])
        #expect(plain.status == 125, "\(plain)")
        #expect(plain.stderrString.contains("chdir"), "\(plain)")

        let json = CLI.spawn(["--json", "--cwd", missing, "true"])
        #expect(json.status == 125, "\(json)")
        let report = try checkedReport(json)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "chdir")
        #expect(report.error?.errno == Int(ENOENT))
        #expect(report.error?.message == "No such file or directory")
    }
}
