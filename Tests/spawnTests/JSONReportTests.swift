// The JSON report: every field, with its type and meaning.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("JSON report")
struct JSONReportTests {
    @Test("all fields are present with the contract's types")
    func fields() throws {
        let r = CLI.spawn(["--json", "sh", "-c", "printf out; printf err >&2; exit 3"])
        #expect(r.status == 3, "\(r)")
        #expect(r.stderr.isEmpty, "with --json only the report is printed: \(r)")
        let object = try #require(r.json, "\(r)")
        #expect(Set(object.keys).isSuperset(of: reportKeys))
        #expect(object["signal"] is NSNull)
        #expect(object["error"] is NSNull)
        #expect(object["outcome"] is String)
        #expect(object["stdout"] is String)
        let report = try checkedReport(r)
        #expect(report.outcome == "exited")
        #expect(report.exit_code == 3)
        #expect(report.signal == nil)
        #expect(report.error == nil)
        #expect((report.pid ?? 0) > 1)
        #expect(report.stdout == "out")
        #expect(report.stderr == "err")
        #expect(report.stdout_bytes == 3)
        #expect(report.stderr_bytes == 3)
        #expect(report.stdout_truncated == false)
        #expect(report.stderr_truncated == false)
        // Milliseconds, not some other unit: more than 0, less than a hang.
        #expect(report.wall_time_ms > 0 && report.wall_time_ms < TestTime.hang.inSeconds * 1000, "\(r)")
        #expect(report.max_rss_kib > 0)
    }

    @Test("pid is the child's pid")
    func pid() throws {
        let r = CLI.spawn(["--json", "sh", "-c", "echo $$"])
        let report = try checkedReport(r)
        #expect(report.pid != nil)
        #expect(report.stdout == "\(report.pid ?? -1)\n")
    }

    @Test("rusage: CPU time and RSS of a busy child are reported")
    func usage() throws {
        let r = CLI.spawn(["--json", CLI.python, "-c",
                           "import time\nb = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited", "\(r)")
        #expect(report.user_time_ms + report.system_time_ms >= 250, "\(r)")
        #expect(report.max_rss_kib >= 60 * 1024, "\(r)")
        #expect(report.wall_time_ms >= report.user_time_ms * 0.9, "\(r)")
    }

    @Test("output is JSON-escaped and round-trips exactly")
    func escaping() throws {
        let r = CLI.spawn(["--json", "printf", "q\"b\\\\s/t\\tn\\nr\\rc\\001d\\037é✓"])
        let report = try checkedReport(r)
        #expect(report.stdout == "q\"b\\s/t\tn\nr\rc\u{1}d\u{1F}é✓")
        #expect(report.stdout_bytes == report.stdout.utf8.count)
    }

    @Test("invalid UTF-8 is replaced; *_bytes counts the bytes read")
    func invalidUTF8() throws {
        let r = CLI.spawn(["--json", "printf", "\\377abc\\300"])
        let report = try checkedReport(r)
        #expect(report.stdout_bytes == 5)
        #expect(report.stdout.hasPrefix("\u{FFFD}abc"), "\(r)")
        #expect(report.stdout.contains("\u{FFFD}"))
    }

    @Test("large output on both streams is collected completely")
    func largeOutput() throws {
        let r = CLI.spawn(["--json", "sh", "-c",
                           "head -c 1000000 /dev/zero | tr '\\000' a & head -c 700000 /dev/zero | tr '\\000' b >&2; wait"])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited")
        #expect(report.stdout_bytes == 1_000_000)
        #expect(report.stderr_bytes == 700_000)
        #expect(report.stdout.utf8.count == 1_000_000 && report.stdout.allSatisfy { $0 == "a" })
        #expect(report.stderr.utf8.count == 700_000 && report.stderr.allSatisfy { $0 == "b" })
        #expect(!report.stdout_truncated && !report.stderr_truncated)
    }

    @Test("a spawn failure's report: outcome spawn_failed with error {step, errno, message}")
    func spawnFailed() throws {
        let r = CLI.spawn(["--json", "/nonexistent/dir/prog"])
        let object = try #require(r.json, "\(r)")
        #expect(object["exit_code"] is NSNull)
        #expect(object["signal"] is NSNull)
        let error = try #require(object["error"] as? [String: Any], "\(r)")
        #expect(error["step"] is String)
        #expect(error["message"] is String)
        let report = try checkedReport(r)
        #expect(report.outcome == "spawn_failed")
        #expect(report.error?.step == "exec")
        #expect(report.error?.errno == Int(ENOENT))
        #expect(report.stdout == "" && report.stderr == "")
        #expect(report.stdout_bytes == 0 && report.stderr_bytes == 0)
    }
}
