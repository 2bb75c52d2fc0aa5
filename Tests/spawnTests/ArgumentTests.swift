// Everything after EXECUTABLE belongs to the child; `--` ends spawn's options.

import Foundation
import Testing

@Suite("Command line")
struct ArgumentTests {
    @Test("options after EXECUTABLE are the child's arguments")
    func argumentsAfterExecutable() {
        let r = CLI.spawn(["sh", "-c", "echo \"$@\"", "x", "--json", "--cpu", "1"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "--json --cpu 1\n", "no JSON report, the child got the options: \(r)")
        #expect(r.stderr.isEmpty)
    }

    @Test("options after EXECUTABLE are the child's, also with --json before it")
    func argumentsAfterExecutableWithJSON() throws {
        let r = CLI.spawn(["--json", "sh", "-c", "echo \"$@\"", "x", "--timeout", "0.1", "--", "--help"])
        let report = try checkedReport(r)
        #expect(report.outcome == "exited")
        #expect(report.stdout == "--timeout 0.1 -- --help\n")
    }

    @Test("arguments are passed verbatim (spaces, quotes, empty, non-ASCII)")
    func verbatimArguments() throws {
        let args = ["a b", "", "'\"$HOME\"'", "é✓", "-", "--", "*"]
        let r = CLI.spawn(["--json", "--", "sh", "-c", "for a in \"$@\"; do printf '[%s]' \"$a\"; done", "x"] + args)
        let report = try checkedReport(r)
        #expect(report.stdout == args.map { "[\($0)]" }.joined())
    }

    @Test("-- separates options from the command")
    func doubleDash() throws {
        let r = CLI.spawn(["--timeout", "10", "--", "sh", "-c", "echo ok"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "ok\n")

        let j = CLI.spawn(["--json", "--", "printf", "x"])
        let report = try checkedReport(j)
        #expect(report.stdout == "x")
    }

    @Test("after --, an EXECUTABLE that looks like an option is a command name (127, not a usage error)")
    func doubleDashDashedExecutable() throws {
        let name = "--not-an-option-\(UInt32.random(in: 0...UInt32.max))"
        let r = CLI.spawn(["--", name])
        #expect(r.status == 127, "\(r)")
        let j = CLI.spawn(["--json", "--", name])
        #expect(j.status == 127, "\(j)")
        #expect(try checkedReport(j).error?.step == "resolve")
    }

    @Test("an option value that looks like a command is the option's value")
    func optionValueNotCommand() {
        // `--cwd /` takes "/" as its value; the command is pwd.
        let r = CLI.spawn(["--cwd", "/", "--env", "true=1", "pwd"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdoutString == "/\n")
    }

    @Test("spawn limits prints every resource as NAME SOFT HARD")
    func limitsSubcommand() {
        let r = CLI.spawn(["limits"])
        #expect(r.status == 0, "\(r)")
        let names = r.stdoutString.split(separator: "\n").map { $0.split(separator: " ") }
        let expected = ["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                        "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"]
        #expect(Set(names.compactMap { $0.first.map(String.init) }) == Set(expected), "\(r)")
        for line in names {
            #expect(line.count == 3, "\(line)")
            for value in line.dropFirst() {
                #expect(value == "unlimited" || UInt64(value) != nil, "\(line)")
            }
        }
    }
}
