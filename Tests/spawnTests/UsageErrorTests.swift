// Usage errors exit 125 (not swift-argument-parser's 64) and name what was wrong.

import Foundation
import Testing

struct BadValue: CustomStringConvertible, Sendable {
    var arguments: [String]
    /// Strings the error message must contain (the option and the bad value).
    var mentions: [String]
    var description: String { arguments.joined(separator: " ") }
}

@Suite("Usage errors")
struct UsageErrorTests {
    static let badValues: [BadValue] = [
        BadValue(arguments: ["--cpu", "abc"], mentions: ["--cpu", "abc"]),
        BadValue(arguments: ["--cpu", "1.5"], mentions: ["--cpu", "1.5"]),
        BadValue(arguments: ["--cpu", "-1"], mentions: ["--cpu", "-1"]),
        BadValue(arguments: ["--cpu", ":"], mentions: ["--cpu"]),
        BadValue(arguments: ["--cpu", "1M"], mentions: ["--cpu", "1M"]),
        BadValue(arguments: ["--as", "12X"], mentions: ["--as", "12X"]),
        BadValue(arguments: ["--as", "1GB"], mentions: ["--as", "1GB"]),
        BadValue(arguments: ["--stack", "1:2:3"], mentions: ["--stack", "1:2:3"]),
        BadValue(arguments: ["--nofile", "5:3"], mentions: ["--nofile", "5:3"]),
        BadValue(arguments: ["--nofile", "unlimited:5"], mentions: ["--nofile", "unlimited:5"]),
        BadValue(arguments: ["--nofile", "1K"], mentions: ["--nofile", "1K"]),
        BadValue(arguments: ["--nproc", "10M"], mentions: ["--nproc", "10M"]),
        BadValue(arguments: ["--fsize", "2K:1K"], mentions: ["--fsize", "2K:1K"]),
        BadValue(arguments: ["--rttime", "x"], mentions: ["--rttime", "x"]),
        BadValue(arguments: ["--timeout", "-1"], mentions: ["--timeout", "-1"]),
        BadValue(arguments: ["--timeout", "5x"], mentions: ["--timeout", "5x"]),
        BadValue(arguments: ["--timeout", "abc"], mentions: ["--timeout", "abc"]),
        BadValue(arguments: ["--kill-after", "soon"], mentions: ["--kill-after", "soon"]),
        BadValue(arguments: ["--signal", "NOPE"], mentions: ["--signal", "NOPE"]),
        BadValue(arguments: ["--signal", "0"], mentions: ["--signal"]),
        BadValue(arguments: ["--group", "bad"], mentions: ["--group", "bad"]),
        BadValue(arguments: ["--uid", "nobody-by-name"], mentions: ["--uid", "nobody-by-name"]),
        BadValue(arguments: ["--gid", "-5"], mentions: ["--gid", "-5"]),
        BadValue(arguments: ["--output-limit", "lots"], mentions: ["--output-limit", "lots"]),
        BadValue(arguments: ["--seccomp", "no-such-profile"], mentions: ["no-such-profile"]),
        BadValue(arguments: ["--deny", "mkdir,no_such_syscall_xyz"], mentions: ["no_such_syscall_xyz"]),
        BadValue(arguments: ["--deny", "frobnicate"], mentions: ["frobnicate"]),
        BadValue(arguments: ["--seccomp-action", "explode", "--deny", "mkdir"], mentions: ["--seccomp-action", "explode"]),
    ]

    @Test("a malformed value exits 125 naming the option and the value", arguments: badValues)
    func malformedValue(_ bad: BadValue) {
        let marker = "must-not-run-\(UUID().uuidString)"
        for json in [false, true] {
            let r = CLI.spawn((json ? ["--json"] : []) + bad.arguments + ["sh", "-c", "echo \(marker)"])
            #expect(r.status == 125, "\(bad) json=\(json): \(r)")
            #expect(!r.stdoutString.contains(marker), "the child must not run: \(r)")
            let message = r.stderrString + r.stdoutString
            for needle in bad.mentions {
                #expect(message.contains(needle), "\(bad): message should name '\(needle)': \(r)")
            }
        }
    }

    @Test("an unknown option exits 125 and names it")
    func unknownOption() {
        for json in [false, true] {
            let r = CLI.spawn((json ? ["--json"] : []) + ["--no-such-option", "true"])
            #expect(r.status == 125, "\(r)")
            #expect(r.stderrString.contains("--no-such-option"), "\(r)")
        }
    }

    @Test("an option missing its value exits 125")
    func missingValue() {
        let r = CLI.spawn(["--cpu"])
        #expect(r.status == 125, "\(r)")
    }

    @Test("a missing EXECUTABLE exits 125", arguments: [[], ["--json"], ["--"], ["--json", "--"], ["--cpu", "5"]])
    func missingExecutable(_ arguments: [String]) {
        let r = CLI.spawn(arguments)
        #expect(r.status == 125, "\(arguments): \(r)")
        #expect(!r.stderr.isEmpty, "\(r)")
    }

    @Test("--stdin with a missing file exits 125 naming the file")
    func missingStdinFile() {
        let dir = TempDir()
        let path = dir.file("no-such-input")
        for json in [false, true] {
            let r = CLI.spawn((json ? ["--json"] : []) + ["--stdin", path, "cat"])
            #expect(r.status == 125, "\(r)")
            #expect((r.stderrString + r.stdoutString).contains(path), "\(r)")
        }
    }

    @Test("spawn --help exits 0 and prints usage")
    func help() {
        let r = CLI.spawn(["--help"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString.lowercased().contains("usage"), "\(r)")
        #expect(r.stdoutString.contains("--timeout"), "\(r)")
    }
}
