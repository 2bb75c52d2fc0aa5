// The child's process: environment, working directory, group/session,
// credentials, no_new_privs, stdin and the pipes it writes to.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

func envLines(_ text: String) -> Set<String> {
    Set(text.split(separator: "\n").map(String.init))
}

@Suite("Child environment")
struct EnvironmentTests {
    @Test("the child inherits spawn's environment by default")
    func inherits() {
        let r = CLI.spawn(["env"])
        #expect(r.status == 0, "\(r)")
        #expect(envLines(r.stdoutString).contains("SPAWN_TEST_INHERITED=inherited-value"))
    }

    @Test("--env NAME=VALUE adds and overrides (repeatable)")
    func env() {
        let r = CLI.spawn(["--env", "A=1", "--env", "B=x=y", "--env", "EMPTY=", "--env", "SPAWN_TEST_INHERITED=over", "env"])
        #expect(r.status == 0, "\(r)")
        let lines = envLines(r.stdoutString)
        #expect(lines.contains("A=1"))
        #expect(lines.contains("B=x=y"))
        #expect(lines.contains("EMPTY="))
        #expect(lines.contains("SPAWN_TEST_INHERITED=over"))
        #expect(!lines.contains("SPAWN_TEST_INHERITED=inherited-value"))
        #expect(lines.contains { $0.hasPrefix("HOME=") }, "the rest is inherited")
    }

    @Test("--unset NAME removes a variable (repeatable)")
    func unset() {
        let r = CLI.spawn(["--unset", "SPAWN_TEST_INHERITED", "--unset", "HOME", "env"])
        #expect(r.status == 0, "\(r)")
        let lines = envLines(r.stdoutString)
        #expect(!lines.contains { $0.hasPrefix("SPAWN_TEST_INHERITED=") })
        #expect(!lines.contains { $0.hasPrefix("HOME=") })
        #expect(lines.contains { $0.hasPrefix("PATH=") })
    }

    @Test("--clear-env starts from an empty environment")
    func clearEnv() {
        let empty = CLI.spawn(["--clear-env", "/usr/bin/env"])
        #expect(empty.status == 0, "\(empty)")
        #expect(empty.stdoutString == "", "\(empty)")

        let some = CLI.spawn(["--clear-env", "--env", "A=1", "--env", "B=2", "/usr/bin/env"])
        #expect(some.status == 0, "\(some)")
        #expect(envLines(some.stdoutString) == ["A=1", "B=2"], "\(some)")

        let json = CLI.spawn(["--json", "--clear-env", "--env", "PATH=/usr/bin:/bin", "env"])
        let report = try? checkedReport(json)
        #expect(report.map { envLines($0.stdout) } == ["PATH=/usr/bin:/bin"], "\(json)")
    }

    @Test("--cwd sets the working directory")
    func cwd() {
        let dir = TempDir()
        let r = CLI.spawn(["--cwd", dir.path, "sh", "-c", "pwd -P"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == dir.path + "\n")
        let root = CLI.spawn(["--cwd", "/", "pwd"])
        #expect(root.stdoutString == "/\n", "\(root)")
    }

    @Test("--cwd that is a file fails at chdir (125)")
    func cwdNotADirectory() throws {
        let dir = TempDir()
        let file = dir.write("f", "x")
        let r = CLI.spawn(["--json", "--cwd", file, "true"])
        #expect(r.status == 125, "\(r)")
        let report = try checkedReport(r)
        #expect(report.error?.step == "chdir")
        #expect(report.error?.errno == Int(ENOTDIR))
    }
}

@Suite("Process group and session")
struct GroupTests {
    /// [state, ppid, pgrp, session] of the child, and its pid from the report.
    func stat(_ options: [String]) throws -> (pid: Int, pgrp: Int, session: Int, wrapper: pid_t) {
        let r = CLI.spawn(["--json"] + options + ["sh", "-c", "cat /proc/$$/stat"])
        let report = try checkedReport(r)
        let f = Proc.statFields(report.stdout)
        try #require(f.count > 4, "\(r)")
        return (report.pid ?? -1, Int(f[2]) ?? -2, Int(f[3]) ?? -3, r.wrapperPID)
    }

    @Test("default and --group session: the child leads a new session")
    func session() throws {
        for options in [[], ["--group", "session"]] {
            let s = try stat(options)
            #expect(s.session == s.pid, "\(options)")
            #expect(s.pgrp == s.pid, "\(options)")
        }
    }

    @Test("--group group: a new process group in spawn's session")
    func group() throws {
        let s = try stat(["--group", "group"])
        #expect(s.pgrp == s.pid)
        #expect(s.session == Int(getsid(0)))
    }

    @Test("--group inherit: stays in spawn's group")
    func inherit() throws {
        let s = try stat(["--group", "inherit"])
        #expect(s.pgrp == Int(s.wrapper), "spawn runs in the group of the harness's wrapper")
        #expect(s.pgrp != s.pid)
        #expect(s.session == Int(getsid(0)))
    }

    @Test("--group inherit with a timeout signals the child alone, not spawn's group")
    func inheritTimeout() throws {
        let r = CLI.spawn(["--json", "--group", "inherit", "--timeout", "0.3", "sleep", TestTime.childSleep])
        #expect(r.status == 124, "spawn (and its group) survived the teardown: \(r)")
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
    }
}

@Suite("Credentials and no_new_privs")
struct CredentialTests {
    @Test("--uid and --gid drop to those ids and drop supplementary groups", .enabled(if: getuid() == 0))
    func uidGid() {
        let r = CLI.spawn(["--uid", "65534", "--gid", "65534", "--cwd", "/", "sh", "-c", "id -u; id -g; id -G"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "65534\n65534\n65534\n", "\(r)")
    }

    /// Issue 11, defect 2: on the main of 2026-12-03 the child kept gid 0 (this
    /// test printed "65534\n0\n"), so a root-group-writable file stayed writable.
    @Test("--uid alone sets the gid to the user's primary group, and drops the groups", .enabled(if: getuid() == 0))
    func uidOnly() throws {
        let primary = try #require(UnusedUser.passwdEntry(65534), "no passwd entry for 65534").primaryGroup
        let r = CLI.spawn(["--uid", "65534", "--cwd", "/", "sh", "-c", "id -u; id -g; id -G"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "65534\n\(primary)\n\(primary)\n", "\(r)")
    }

    @Test("--uid alone with a uid that has no passwd entry: the gid is the same number", .enabled(if: getuid() == 0))
    func uidWithoutEntry() throws {
        let id = try UnusedUser.next()
        let r = CLI.spawn(["--uid", "\(id)", "--cwd", "/", "sh", "-c", "id -u; id -g; id -G"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "\(id)\n\(id)\n\(id)\n", "\(r)")
    }

    /// Issue 11, defect 2, as the attacker saw it: a file writable by the root
    /// group, and a child started with --uid only. On the main of 2026-12-03 the
    /// write succeeded.
    @Test("--uid alone cannot write a root-group-writable file", .enabled(if: getuid() == 0))
    func rootGroupFileStaysClosed() throws {
        let dir = "/tmp/asyncspawn-gid-\(getpid())-\(Int.random(in: 0...999_999))"
        mkdir(dir, 0o755)
        defer { unlink(dir + "/f"); rmdir(dir) }
        let fd = open(dir + "/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0o660)
        #expect(fd >= 0)
        fchown(fd, 0, 0)
        fchmod(fd, 0o660)
        close(fd)
        let r = CLI.spawn(["--json", "--uid", "65534", "--cwd", "/", "sh", "-c", "echo x >> \(dir)/f"])
        let report = try checkedReport(r)
        #expect(report.exit_code != 0, "the child wrote a root-group-writable file: \(r)")
    }

    static var ownNoNewPrivs: Bool {
        ((try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? "")
            .split(separator: "\n").contains { $0.hasPrefix("NoNewPrivs:") && $0.hasSuffix("1") }
    }

    func noNewPrivs(_ options: [String]) -> String {
        let r = CLI.spawn(options + ["grep", "NoNewPrivs", "/proc/self/status"])
        #expect(r.status == 0, "\(r)")
        return r.stdoutString.filter { !$0.isWhitespace }
    }

    @Test("--no-new-privs sets it; it is off by default")
    func flag() {
        #expect(noNewPrivs(["--no-new-privs"]) == "NoNewPrivs:1")
        if !Self.ownNoNewPrivs {
            #expect(noNewPrivs([]) == "NoNewPrivs:0")
        }
    }

    @Test("a seccomp filter implies no_new_privs")
    func impliedBySeccomp() {
        #expect(noNewPrivs(["--seccomp", "no-network"]) == "NoNewPrivs:1")
        #expect(noNewPrivs(["--deny", "mkdir"]) == "NoNewPrivs:1")
    }
}

@Suite("Standard streams")
struct StreamTests {
    @Test("default stdin is /dev/null: cat ends at once although spawn's stdin stays open")
    func defaultStdin() {
        let r = CLI.spawn(["cat"], stdin: .heldOpen)
        #expect(!r.hung, "the child read spawn's own stdin: \(r)")
        #expect(r.status == 0)
        #expect(r.stdout.isEmpty)
        let link = CLI.spawn(["readlink", "/proc/self/fd/0"])
        #expect(link.stdoutString == "/dev/null\n", "\(link)")
    }

    @Test("--stdin FILE feeds the file")
    func stdinFile() throws {
        let dir = TempDir()
        var text = ""
        for i in 0..<20000 { text += "line \(i)\n" }
        let path = dir.write("input", text)
        let r = CLI.spawn(["--stdin", path, "cat"])
        #expect(r.status == 0, "status \(r.status)")
        #expect(r.stdoutString == text)

        let j = CLI.spawn(["--json", "--stdin", path, "wc", "-l"])
        #expect(try checkedReport(j).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "20000")
    }

    @Test("--stdin FILE reaches the child through a pipe, not the file itself")
    func stdinFileIsPipe() {
        let dir = TempDir()
        let path = dir.write("input", "abc")
        let r = CLI.spawn(["--stdin", path, "readlink", "/proc/self/fd/0"])
        #expect(r.stdoutString.hasPrefix("pipe:"), "\(r)")
    }

    @Test("--stdin - forwards spawn's stdin")
    func stdinDash() {
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let r = CLI.spawn(["--stdin", "-", "cat"], stdin: .data(bytes))
        #expect(r.status == 0, "status \(r.status)")
        #expect(r.stdout == bytes)
    }

    @Test("--stdin - gives the child a pipe, never spawn's own descriptor")
    func stdinDashIsPipe() {
        let dir = TempDir()
        let path = dir.write("input", "abc")
        let r = CLI.spawn(["--stdin", "-", "sh", "-c", "readlink /proc/self/fd/0; cat"], stdin: .file(path))
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString.hasPrefix("pipe:"), "\(r)")
        #expect(r.stdoutString.hasSuffix("\nabc"), "\(r)")
    }

    @Test("--stdin - with a child that never reads: spawn does not wait for its stdin to end")
    func stdinDashUnread() {
        let r = CLI.spawn(["--stdin", "-", "true"], stdin: .heldOpen)
        #expect(!r.hung, "\(r)")
        #expect(r.status == 0)
        #expect(r.elapsed < TestTime.endsBy(.zero).inSeconds, "\(r)")
    }

    @Test("the child's stdout and stderr are pipes, not spawn's descriptors")
    func outputsArePipes() throws {
        let dir = TempDir()
        let out = dir.file("out"), err = dir.file("err")
        let r = CLI.spawn(["sh", "-c", "readlink /proc/self/fd/1; readlink /proc/self/fd/2 >&2"],
                          stdoutFile: out, stderrFile: err)
        #expect(r.status == 0, "\(r)")
        let o = try String(contentsOfFile: out, encoding: .utf8)
        let e = try String(contentsOfFile: err, encoding: .utf8)
        #expect(o.hasPrefix("pipe:"), "child stdout is \(o)")
        #expect(e.hasPrefix("pipe:"), "child stderr is \(e)")
    }

    @Test("without --json, stdout and stderr are forwarded separately and nothing else is printed")
    func forwarding() {
        let r = CLI.spawn(["sh", "-c", "echo out1; echo err1 >&2; echo out2"])
        #expect(r.status == 0)
        #expect(r.stdoutString == "out1\nout2\n")
        #expect(r.stderrString == "err1\n")
    }

    @Test("without --json, output is forwarded as it arrives")
    func streaming() {
        // The child prints its second line, and ends, only after the harness has
        // received the first one and answered (created the file): were output
        // held until the child ended, the run would hang. No timing involved.
        let dir = TempDir()
        let go = dir.file("go")
        let r = CLI.spawn(["sh", "-c", "echo first; while [ ! -e \"$1\" ]; do sleep 0.01; done; echo second", "x", go],
                          onFirstStdout: {
                              let fd = open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                              if fd >= 0 { close(fd) }
                          })
        #expect(!r.hung, "the first line was not forwarded before the child ended: \(r)")
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "first\nsecond\n", "\(r)")
    }

    @Test("die-with-parent: a SIGKILLed spawn leaves nothing running; --no-die-with-parent turns it off")
    func dieWithParent() throws {
        for keep in [false, true] {
            let dir = TempDir()
            let marker = uniqueSleep()
            let pidfile = dir.file("pid")
            let script = """
                "$0" \(keep ? "--no-die-with-parent" : "") sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep \(marker)' x "$1" &
                sp=$!
                while [ ! -s "$1" ]; do sleep 0.02; done
                kill -KILL $sp
                wait $sp
                cat "$1"
                """
            let r = CLI.run(executable: "/bin/sh", argv: ["sh", "-c", script, CLI.spawnPath, pidfile])
            defer { Proc.killAll(withMarker: marker) }
            let pid = try #require(pid_t(r.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)), "\(r)")
            if keep {
                // Still running after spawn died (give PDEATHSIG, if wrongly set, time to act).
                usleep(300_000)
                #expect(Proc.isAliveWith(pid: pid, marker: marker), "--no-die-with-parent child was killed")
            } else {
                #expect(Proc.waitGone(marker: marker, pid: pid, within: TestTime.hang), "child survived its spawn")
            }
        }
    }
}
