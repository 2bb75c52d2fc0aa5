// The README's library examples, compiled and run. Keep them in sync with README.md.
import AsyncSpawn
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared) struct ReadmeExamplesTests {
    @Test func collect() async throws {
        var config = Configuration(executable: "python3", arguments: ["-c", "print('hi')"])
        config.limits.cpuTime = .seconds(.seconds(2))
        config.limits.addressSpace = .bytes(512 << 20)
        config.timeout = .seconds(5)
        config.outputLimit = 1 << 20
        let result = try await run(config)
        #expect(result.outcome == .exited)
        #expect(result.termination == .exited(0))
        #expect(result.standardOutputString == "hi\n")
        #expect(result.usage.wallTime > .zero)
    }

    @Test func stream() async throws {
        let config = Configuration(executable: "seq", arguments: ["1", "3"])
        let (lines, report) = try await withChildProcess(config) { child in
            var lines: [String] = []
            for try await line in child.standardOutput.lines { lines.append(line) }
            _ = try await child.wait()  // the end of stdout may come before the exit
            return lines
        }
        #expect(lines == ["1", "2", "3"])
        #expect(report.outcome == .exited)
    }

    @Test func stdin() async throws {
        var config = Configuration(executable: "tr", arguments: ["a-z", "A-Z"])
        config.standardInput = .pipe
        let (upper, _) = try await withChildProcess(config) { child in
            async let output = child.standardOutput.collect()
            try await child.standardInput.write("hello\n")
            child.standardInput.finish()
            return String(decoding: try await output, as: UTF8.self)
        }
        #expect(upper == "HELLO\n")
        let again = try await run(config, input: Array("hello\n".utf8))
        #expect(again.standardOutputString == "HELLO\n")
    }

    @Test func timeout() async throws {
        var config = Configuration(executable: "sleep", arguments: ["30"])
        config.timeout = .milliseconds(200)
        config.teardown = Teardown(signal: .terminate, grace: .seconds(1))
        let result = try await run(config)
        #expect(result.outcome == .timedOut)
        #expect(result.termination == .signaled(.terminate))
    }

    @Test func cancellation() async throws {
        let task = Task { try await run(Configuration(executable: "sleep", arguments: ["30"])) }
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }

    @Test func seccomp() async throws {
        var filter = SeccompFilter.preset(.noNetwork)
            .merging(.preset(.noProcessInspection))
        filter.rules.append(SeccompRule("mkdir", .errno(EACCES)))
        filter.rules.append(SeccompRule("kill", .errno(EPERM), when: [SeccompCondition(argument: 1, .equal, 9)]))
        var config = Configuration(executable: "python3", arguments: ["-c", "import socket; socket.socket()"])
        config.seccomp = filter
        let result = try await run(config)
        #expect(result.termination == .exited(1))
        #expect(result.standardErrorString.contains("PermissionError"))
    }
}
