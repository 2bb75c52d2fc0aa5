import Subprocess
import SystemPackage

/// The swift-subprocess 1.0.2 side of every scenario, written the way its
/// documentation shows.
enum SubprocessBench {
    static func spawnAndWait(_ path: String, _ arguments: [String] = []) async throws -> Int {
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments), output: .discarded)
        guard result.terminationStatus.isSuccess else {
            throw BenchError("swift-subprocess: \(path) ended with \(result.terminationStatus)")
        }
        return 1
    }

    static func concurrent(_ path: String, _ arguments: [String], count: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<count {
                group.addTask { try await spawnAndWait(path, arguments) }
            }
            var done = 0
            for try await n in group { done += n }
            return done
        }
    }

    static func stream(_ path: String, _ arguments: [String]) async throws -> Int {
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            var total = 0
            for try await buffer in execution.standardOutput { total += buffer.count }
            return total
        }
        guard result.terminationStatus.isSuccess else {
            throw BenchError("swift-subprocess: \(path) ended with \(result.terminationStatus)")
        }
        return result.closureResult
    }

    static func lines(_ path: String, _ arguments: [String]) async throws -> Int {
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            var count = 0
            for try await _ in execution.standardOutput.strings() { count += 1 }
            return count
        }
        guard result.terminationStatus.isSuccess else {
            throw BenchError("swift-subprocess: \(path) ended with \(result.terminationStatus)")
        }
        return result.closureResult
    }

    static func roundTrip(_ data: [UInt8]) async throws -> Int {
        let result = try await Subprocess.run(
            .path("/bin/cat"), input: .array(data), output: .sequence, error: .discarded
        ) { execution in
            var total = 0
            for try await buffer in execution.standardOutput { total += buffer.count }
            return total
        }
        guard result.terminationStatus.isSuccess else {
            throw BenchError("swift-subprocess: cat ended with \(result.terminationStatus)")
        }
        return result.closureResult
    }

    static func slowConsumer(_ path: String, _ arguments: [String]) async throws -> Int {
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            var total = 0
            for try await buffer in execution.standardOutput {
                total += buffer.count
                try await Task.sleep(for: .milliseconds(1))
            }
            return total
        }
        return result.closureResult
    }
}
