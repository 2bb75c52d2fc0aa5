// The outcome classification: the most specific applies.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Outcomes")
struct OutcomeTests {
    @Test("cpu_limit: a busy loop under --cpu 1 (soft = hard)")
    func cpuLimitShell() throws {
        let r = CLI.spawn(["--json", "--cpu", "1", "sh", "-c", "while :; do :; done"])
        let report = try checkedReport(r)
        #expect(report.outcome == "cpu_limit", "\(r)")
        #expect(report.signal == Int(SIGXCPU) || report.signal == Int(SIGKILL), "\(r)")
        #expect(r.status == 128 + Int32(report.signal ?? 0))
        // rusage is tick-sampled: on a loaded machine it has read 84 % of the limit.
        #expect(report.user_time_ms + report.system_time_ms >= 500, "\(r)")

        let plain = CLI.spawn(["--cpu", "1", "sh", "-c", "while :; do :; done"])
        #expect(plain.status == 128 + SIGXCPU || plain.status == 128 + SIGKILL, "\(plain)")
    }

    @Test("cpu_limit: python under --cpu 1")
    func cpuLimitPython() throws {
        let r = CLI.spawn(["--json", "--cpu", "1", CLI.python, "-c", "while True: pass"])
        let report = try checkedReport(r)
        #expect(report.outcome == "cpu_limit", "\(r)")
    }

    @Test("cpu_limit: SIGXCPU at the soft limit below the hard one")
    func cpuLimitSoft() throws {
        let r = CLI.spawn(["--json", "--cpu", "1:3", "sh", "-c", "while :; do :; done"])
        let report = try checkedReport(r)
        #expect(report.outcome == "cpu_limit", "\(r)")
        #expect(report.signal == Int(SIGXCPU), "\(r)")
        #expect(r.status == 128 + SIGXCPU)
    }

    @Test("a SIGXCPU not caused by --cpu is still cpu_limit; a plain SIGKILL without --cpu is signaled")
    func signalClassification() throws {
        let k = CLI.spawn(["--json", "sh", "-c", "kill -KILL $$"])
        #expect(try checkedReport(k).outcome == "signaled")
        let x = CLI.spawn(["--json", "sh", "-c", "kill -XCPU $$"])
        #expect(try checkedReport(x).outcome == "cpu_limit", "killed by SIGXCPU is cpu_limit: \(x)")
    }

    @Test("file_size_limit: dd past --fsize")
    func fileSizeLimit() throws {
        let dir = TempDir()
        let r = CLI.spawn(["--json", "--fsize", "1000", "dd", "if=/dev/zero", "of=\(dir.file("f"))", "bs=5000", "count=1"])
        let report = try checkedReport(r)
        #expect(report.outcome == "file_size_limit", "\(r)")
        #expect(report.signal == Int(SIGXFSZ))
        #expect(r.status == 128 + SIGXFSZ)
        var st = stat()
        #expect(stat(dir.file("f"), &st) == 0 && st.st_size <= 1000)

        let plain = CLI.spawn(["--fsize", "1K", "dd", "if=/dev/zero", "of=\(dir.file("g"))", "bs=5000", "count=1"])
        #expect(plain.status == 128 + SIGXFSZ, "\(plain)")
    }

    @Test("output_limit: stdout is cut at exactly the limit and marked truncated")
    func outputLimitStdout() throws {
        let r = CLI.spawn(["--json", "--output-limit", "100", "sh", "-c", "yes"])
        let report = try checkedReport(r)
        #expect(report.outcome == "output_limit", "\(r)")
        #expect(report.stdout_bytes == 100)
        #expect(report.stdout == String(repeating: "y\n", count: 50))
        #expect(report.stdout_truncated == true)
        #expect(report.stderr_truncated == false)
        // `yes` never ends by itself: the library ended it, at once.
        #expect(r.elapsed < TestTime.endsBy(.zero).inSeconds, "\(r)")
    }

    @Test("output_limit on stderr")
    func outputLimitStderr() throws {
        let r = CLI.spawn(["--json", "--output-limit", "1K", "sh", "-c", "yes >&2"])
        let report = try checkedReport(r)
        #expect(report.outcome == "output_limit", "\(r)")
        #expect(report.stderr_bytes == 1024)
        #expect(report.stderr_truncated == true)
        #expect(report.stdout_truncated == false)
        #expect(report.stdout_bytes == 0)
    }

    @Test("a stream of exactly the limit is not truncated", arguments: [false, true])
    func exactlyTheLimit(stderr: Bool) throws {
        let command = stderr ? ["sh", "-c", "printf abcde >&2"] : ["printf", "abcde"]
        let r = CLI.spawn(["--json", "--output-limit", "5"] + command)
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        #expect(report.exit_code == 0)
        #expect((stderr ? report.stderr : report.stdout) == "abcde")
        #expect(!report.stdout_truncated && !report.stderr_truncated, "\(r)")
    }

    @Test("one byte past the limit is output_limit")
    func onePast() throws {
        let r = CLI.spawn(["--json", "--output-limit", "5", "printf", "abcdef"])
        let report = try checkedReport(r)
        #expect(report.outcome == "output_limit", "\(r)")
        #expect(report.stdout == "abcde")
        #expect(report.stdout_truncated)
    }

    @Test("without --json, --output-limit caps what is forwarded and tears the child down")
    func outputLimitForwarded() {
        let r = CLI.spawn(["--output-limit", "100", "yes"])
        #expect(!r.hung, "\(r)")
        #expect(r.stdout.count == 100, "\(r.stdout.count) bytes forwarded")
        #expect(r.status != 0, "\(r)")
    }

    @Test("--json defaults --output-limit to 16M")
    func defaultJSONLimit() throws {
        let r = CLI.spawn(["--json", "sh", "-c", "head -c 17000000 /dev/zero | tr '\\000' a"])
        let report = try checkedReport(r)
        #expect(report.outcome == "output_limit", "outcome \(report.outcome)")
        #expect(report.stdout_bytes == 16 << 20)
        #expect(report.stdout_truncated)
    }

    @Test("without --json there is no default output limit")
    func noDefaultLimitForwarding() {
        let r = CLI.spawn(["sh", "-c", "head -c 20000000 /dev/zero | tr '\\000' a"])
        #expect(r.status == 0, "status \(r.status)")
        #expect(r.stdout.count == 20_000_000)
    }

    @Test("seccomp_violation: a denied call with --seccomp-action kill")
    func seccompViolation() throws {
        let r = CLI.spawn(["--json", "--seccomp", "no-network", "--seccomp-action", "kill",
                           CLI.python, "-c", "import socket; socket.socket()"])
        let report = try checkedReport(r)
        #expect(report.outcome == "seccomp_violation", "\(r)")
        #expect(report.signal == Int(SIGSYS))
        #expect(r.status == 128 + SIGSYS)

        let plain = CLI.spawn(["--seccomp", "no-network", "--seccomp-action", "kill",
                               CLI.python, "-c", "import socket; socket.socket()"])
        #expect(plain.status == 128 + SIGSYS, "\(plain)")
    }

    @Test("timed_out wins over signaled, with the teardown signal in the report")
    func timedOut() throws {
        let r = CLI.spawn(["--json", "--timeout", "0.3", "--signal", "KILL", "sleep", TestTime.childSleep])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL))
        #expect(r.status == 124)
    }
}
