// Timeout teardown and leftovers: nothing the child started is left running,
// and spawn never waits for it.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Teardown")
struct TeardownTests {
    /// The first line of stdout as a pid.
    func firstPID(_ text: String) -> pid_t? {
        text.split(separator: "\n").first.flatMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    @Test("the timeout kills the child's grandchildren too", arguments: ["session", "group"])
    func timeoutKillsGrandchildren(group: String) throws {
        let marker = uniqueSleep()
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn(["--json", "--group", group, "--timeout", "0.3", "sh", "-c", "sleep \(marker) & echo $!; wait"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(r.status == 124)
        #expect(r.elapsed < TestTime.endsBy(.milliseconds(300)).inSeconds, "\(r)")
        let pid = try #require(firstPID(report.stdout), "\(r)")
        // It was signalled before spawn exited; allow it to finish dying.
        #expect(Proc.waitGone(marker: marker, pid: pid, within: TestTime.hang), "the background sleep survived the timeout")
    }

    @Test("--signal chooses the first teardown signal", arguments: [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("INT", 2), ("USR1", 10), ("HUP", 1)])
    func signalOption(name: String, number: Int) throws {
        let r = CLI.spawn(["--json", "--timeout", "0.2", "--signal", name, "sleep", TestTime.childSleep])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == number, "\(r)")
        #expect(r.status == 124)
    }

    @Test("a child ignoring SIGTERM is killed --kill-after later")
    func killAfter() throws {
        let r = CLI.spawn(["--json", "--timeout", "0.3", "--kill-after", "0.2", "sh", "-c", "trap '' TERM; sleep \(TestTime.childSleep)"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL), "\(r)")
        #expect(r.status == 124)
        let nominal = Duration.milliseconds(300 + 200)
        #expect(r.elapsed >= TestTime.notBefore(nominal).inSeconds && r.elapsed < TestTime.endsBy(nominal).inSeconds,
                "took \(r.elapsed) s")
    }

    @Test("--kill-after accepts units")
    func killAfterUnits() throws {
        let r = CLI.spawn(["--timeout", "300ms", "--kill-after", "200ms", "sh", "-c", "trap '' TERM; sleep \(TestTime.childSleep)"])
        #expect(r.status == 124, "\(r)")
        let nominal = Duration.milliseconds(300 + 200)
        #expect(r.elapsed >= TestTime.notBefore(nominal).inSeconds && r.elapsed < TestTime.endsBy(nominal).inSeconds,
                "took \(r.elapsed) s")
    }

    @Test("the default grace before SIGKILL is 2 s")
    func defaultKillAfter() throws {
        let r = CLI.spawn(["--json", "--timeout", "0.2", "sh", "-c", "trap '' TERM; sleep \(TestTime.childSleep)"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL))
        let nominal = Duration.milliseconds(200) + .seconds(2)
        #expect(r.elapsed >= TestTime.notBefore(nominal).inSeconds && r.elapsed < TestTime.endsBy(nominal).inSeconds,
                "took \(r.elapsed) s")
    }

    @Test("DURATION units", arguments: ["0.3", "0.3s", "300ms", "0.005m", "0.0000833h"])
    func durationUnits(text: String) throws {
        let r = CLI.spawn(["--json", "--timeout", text, "sleep", TestTime.childSleep])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out", "\(text)")
        // Each is 0.3 s (0.0000833 h is 0.29988 s, well within notBefore's 20 ms).
        let nominal = Duration.milliseconds(300)
        #expect(r.elapsed >= TestTime.notBefore(nominal).inSeconds && r.elapsed < TestTime.endsBy(nominal).inSeconds,
                "\(text): took \(r.elapsed) s")
    }

    @Test("a timeout that does not expire changes nothing")
    func timeoutNotReached() throws {
        for t in ["1h", "30", "10m"] {
            let r = CLI.spawn(["--json", "--timeout", t, "sh", "-c", "exit 3"])
            let report = try checkedReport(r)
            #expect(report.outcome == "exited")
            #expect(r.status == 3)
        }
    }

    @Test("a background process left in the group is torn down when the child exits; spawn does not wait", arguments: [false, true])
    func leftovers(json: Bool) throws {
        let marker = uniqueSleep()
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn((json ? ["--json"] : []) + ["sh", "-c", "sleep \(marker) & echo $!"])
        #expect(!r.hung, "\(r)")
        #expect(r.status == 0, "\(r)")
        // The child exits at once; the leftover would live for TestTime.childLifetime.
        #expect(r.elapsed < TestTime.endsBy(.zero).inSeconds, "spawn waited \(r.elapsed) s for the leftover")
        #expect(!r.outputHeldOpen)
        let out = json ? try checkedReport(r).stdout : r.stdoutString
        let pid = try #require(firstPID(out), "\(r)")
        #expect(Proc.waitGone(marker: marker, pid: pid, within: TestTime.hang), "the leftover sleep is still running")
    }

    @Test("leftovers are torn down with --group group too")
    func leftoversGroup() throws {
        let marker = uniqueSleep()
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn(["--group", "group", "sh", "-c", "sleep \(marker) & echo $!"])
        #expect(r.status == 0, "\(r)")
        #expect(r.elapsed < TestTime.endsBy(.zero).inSeconds, "\(r)")
        let pid = try #require(firstPID(r.stdoutString), "\(r)")
        #expect(Proc.waitGone(marker: marker, pid: pid, within: TestTime.hang), "the leftover sleep is still running")
    }

    @Test("a grandchild that escaped the group (setsid) and holds the pipe does not make spawn wait", arguments: [false, true])
    func escapedGrandchild(json: Bool) throws {
        let marker = uniqueSleep()
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn((json ? ["--json"] : []) + ["sh", "-c", "setsid sleep \(marker) & echo started"])
        #expect(!r.hung, "\(r)")
        #expect(r.elapsed < TestTime.endsBy(.zero).inSeconds, "spawn waited \(r.elapsed) s for the escaped grandchild")
        #expect(r.status == 0, "\(r)")
        #expect(!r.outputHeldOpen, "spawn's own stdout/stderr must not be held by the grandchild")
        let out = json ? try checkedReport(r).stdout : r.stdoutString
        #expect(out.hasPrefix("started"), "\(r)")
    }
}
