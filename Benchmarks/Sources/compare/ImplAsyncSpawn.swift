import AsyncSpawn

/// The AsyncSpawn side of every scenario. (Only this file imports AsyncSpawn:
/// it and swift-subprocess both have `run`, `Configuration`, `Environment`.)
enum AsyncSpawnBench {
    /// No options: stdio on /dev/null, the parent's process group, no
    /// parent-death signal (pidfd waiting is always on).
    static func minimal(_ executable: String, _ arguments: [String] = []) -> Configuration {
        var c = Configuration(executable: executable, arguments: arguments)
        c.standardInput = .null
        c.standardOutput = .null
        c.standardError = .null
        c.processGroup = .inherit
        c.dieWithParent = false
        return c
    }

    /// A new session, four rlimits, die-with-parent (and pidfd waiting).
    static func contained(_ executable: String, _ arguments: [String] = []) -> Configuration {
        var c = Configuration(executable: executable, arguments: arguments)
        c.standardInput = .null
        c.standardOutput = .null
        c.standardError = .null
        c.processGroup = .newSession
        c.dieWithParent = true
        c.limits.cpuTime = .seconds(.seconds(60))
        c.limits.addressSpace = .bytes(8 << 30)
        c.limits.fileSize = .bytes(1 << 30)
        c.limits.openFiles = .count(1024)
        return c
    }

    /// `contained` plus the no-network seccomp preset.
    static func filtered(_ executable: String, _ arguments: [String] = []) -> Configuration {
        var c = contained(executable, arguments)
        c.seccomp = .preset(.noNetwork)
        return c
    }

    static func spawnAndWait(_ configuration: Configuration) async throws -> Int {
        let result = try await run(configuration)
        guard result.termination == .exited(0) else {
            throw BenchError("AsyncSpawn: \(configuration.executable) ended with \(result.termination)")
        }
        return 1
    }

    /// `count` children at once, each in a task of a task group.
    static func concurrent(_ configuration: Configuration, count: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<count {
                group.addTask { try await spawnAndWait(configuration) }
            }
            var done = 0
            for try await n in group { done += n }
            return done
        }
    }

    /// Stdout read to the end through the chunk sequence; returns the byte count.
    static func stream(_ executable: String, _ arguments: [String]) async throws -> Int {
        var c = Configuration(executable: executable, arguments: arguments)
        c.standardError = .null
        c.processGroup = .inherit  // same session (and autogroup) as the peers' children
        let (total, report) = try await withChildProcess(c) { child in
            var total = 0
            for try await chunk in child.standardOutput { total += chunk.count }
            // End of file is not the end of the child (dd closes stdout, then
            // prints its statistics): wait, or the scope's end tears it down.
            _ = try await child.wait()
            return total
        }
        guard report.termination == .exited(0) else { throw BenchError("AsyncSpawn: \(executable) ended with \(report.termination)") }
        return total
    }

    /// Stdout read through the line view; returns the line count.
    static func lines(_ executable: String, _ arguments: [String]) async throws -> Int {
        var c = Configuration(executable: executable, arguments: arguments)
        c.standardError = .null
        c.processGroup = .inherit  // same session (and autogroup) as the peers' children
        let (count, report) = try await withChildProcess(c) { child in
            var count = 0
            for try await _ in child.standardOutput.lines { count += 1 }
            _ = try await child.wait()
            return count
        }
        guard report.termination == .exited(0) else { throw BenchError("AsyncSpawn: \(executable) ended with \(report.termination)") }
        return count
    }

    /// `data` written to `cat`'s stdin while its stdout is read; returns bytes read.
    static func roundTrip(_ data: [UInt8]) async throws -> Int {
        var c = Configuration(executable: "/bin/cat")
        c.standardInput = .pipe
        c.standardError = .null
        c.processGroup = .inherit  // same session (and autogroup) as the peers' children
        let (total, report) = try await withChildProcess(c) { child in
            async let fed: Void = {
                try await child.standardInput.write(data)
                child.standardInput.finish()
            }()
            var total = 0
            for try await chunk in child.standardOutput { total += chunk.count }
            try await fed
            _ = try await child.wait()
            return total
        }
        guard report.termination == .exited(0) else { throw BenchError("AsyncSpawn: cat ended with \(report.termination)") }
        return total
    }

    /// A slow consumer: one chunk, then 1 ms of sleep, to the end.
    static func slowConsumer(_ executable: String, _ arguments: [String]) async throws -> Int {
        var c = Configuration(executable: executable, arguments: arguments)
        c.standardError = .null
        c.processGroup = .inherit  // same session (and autogroup) as the peers' children
        let (total, _) = try await withChildProcess(c) { child in
            var total = 0
            for try await chunk in child.standardOutput {
                total += chunk.count
                try await Task.sleep(for: .milliseconds(1))
            }
            _ = try await child.wait()
            return total
        }
        return total
    }
}
