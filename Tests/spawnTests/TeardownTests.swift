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
        #expect(r.elapsed < 5, "\(r)")
        let pid = try #require(firstPID(report.stdout), "\(r)")
        // It was signalled before spawn exited; allow it a moment to finish dying.
        #expect(Proc.waitGone(marker: marker, pid: pid, within: 2), "the background sleep survived the timeout")
    }

    @Test("--signal chooses the first teardown signal", arguments: [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("INT", 2), ("USR1", 10), ("HUP", 1)])
    func signalOption(name: String, number: Int) throws {
        let r = CLI.spawn(["--json", "--timeout", "0.2", "--signal", name, "sleep", "10"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == number, "\(r)")
        #expect(r.status == 124)
    }

    @Test("a child ignoring SIGTERM is killed --kill-after later")
    func killAfter() throws {
        let r = CLI.spawn(["--json", "--timeout", "0.3", "--kill-after", "0.2", "sh", "-c", "trap '' TERM; sleep 30"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL), "\(r)")
        #expect(r.status == 124)
        #expect(r.elapsed >= 0.45 && r.elapsed < 3, "took \(r.elapsed) s")
    }

    @Test("--kill-after accepts units")
    func killAfterUnits() throws {
        let r = CLI.spawn(["--timeout", "300ms", "--kill-after", "200ms", "sh", "-c", "trap '' TERM; sleep 30"])
        #expect(r.status == 124, "\(r)")
        #expect(r.elapsed >= 0.45 && r.elapsed < 3, "took \(r.elapsed) s")
    }

    @Test("the default grace before SIGKILL is 2 s")
    func defaultKillAfter() throws {
        let r = CLI.spawn(["--json", "--timeout", "0.2", "sh", "-c", "trap '' TERM; sleep 30"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out")
        #expect(report.signal == Int(SIGKILL))
        #expect(r.elapsed >= 2.1 && r.elapsed < 6, "took \(r.elapsed) s")
    }

    @Test("DURATION units", arguments: ["0.3", "0.3s", "300ms", "0.005m", "0.0000833h"])
    func durationUnits(text: String) throws {
        let r = CLI.spawn(["--json", "--timeout", text, "sleep", "10"])
        let report = try checkedReport(r)
        #expect(report.outcome == "timed_out", "\(text)")
        #expect(r.elapsed > 0.2 && r.elapsed < 5, "\(text): took \(r.elapsed) s")
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
        let r = CLI.spawn((json ? ["--json"] : []) + ["sh", "-c", "sleep \(marker) & echo $!"], deadline: 20)
        #expect(!r.hung, "\(r)")
        #expect(r.status == 0, "\(r)")
        #expect(r.elapsed < 3, "spawn waited \(r.elapsed) s for the leftover")
        #expect(!r.outputHeldOpen)
        let out = json ? try checkedReport(r).stdout : r.stdoutString
        let pid = try #require(firstPID(out), "\(r)")
        #expect(Proc.waitGone(marker: marker, pid: pid, within: 2), "the leftover sleep is still running")
    }

    @Test("leftovers are torn down with --group group too")
    func leftoversGroup() throws {
        let marker = uniqueSleep()
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn(["--group", "group", "sh", "-c", "sleep \(marker) & echo $!"], deadline: 20)
        #expect(r.status == 0, "\(r)")
        #expect(r.elapsed < 3, "\(r)")
        let pid = try #require(firstPID(r.stdoutString), "\(r)")
        #expect(Proc.waitGone(marker: marker, pid: pid, within: 2), "the leftover sleep is still running")
    }

    @Test("a grandchild that escaped the group (setsid) and holds the pipe does not make spawn wait", arguments: [false, true])
    func escapedGrandchild(json: Bool) throws {
        let marker = uniqueSleep(31)
        defer { Proc.killAll(withMarker: marker) }
        let r = CLI.spawn((json ? ["--json"] : []) + ["sh", "-c", "setsid sleep \(marker) & echo started"], deadline: 25)
        #expect(!r.hung, "\(r)")
        #expect(r.elapsed < 8, "spawn waited \(r.elapsed) s for the escaped grandchild")
        #expect(r.status == 0, "\(r)")
        #expect(!r.outputHeldOpen, "spawn's own stdout/stderr must not be held by the grandchild")
        let out = json ? try checkedReport(r).stdout : r.stdoutString
        #expect(out.hasPrefix("started"), "\(r)")
    }
}
