import CFloor
import Foundation

/// Foundation's `Process`, as its documentation shows it.
enum FoundationBench {
    static func spawnAndWait(_ path: String, _ arguments: [String] = []) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw BenchError("Foundation: \(path) ended with \(process.terminationStatus)")
        }
        return 1
    }

    /// `count` children at once; each task awaits its terminationHandler.
    static func concurrent(_ path: String, _ arguments: [String], count: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<count {
                group.addTask {
                    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
                        let process = Process()
                        process.executableURL = URL(fileURLWithPath: path)
                        process.arguments = arguments
                        process.standardInput = FileHandle.nullDevice
                        process.standardOutput = FileHandle.nullDevice
                        process.standardError = FileHandle.nullDevice
                        process.terminationHandler = { p in
                            c.resume(returning: p.terminationStatus == 0 ? 1 : 0)
                        }
                        do { try process.run() } catch { c.resume(throwing: error) }
                    }
                }
            }
            var done = 0
            for try await n in group { done += n }
            return done
        }
    }
}

/// An argv kept in C memory for the whole run.
final class CArgv: @unchecked Sendable {
    // @unchecked: immutable after init.
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    init(_ arguments: [String]) {
        var copies = arguments.map { strdup($0) }
        pointer = copies.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) {
                cfloor_argv_new($0.baseAddress, Int32(arguments.count))!
            }
        }
        for c in copies { free(c) }
        copies.removeAll()
    }
    deinit { cfloor_argv_free(pointer) }
}

/// The C floor: posix_spawn + waitpid, and plain read loops.
enum FloorBench {
    static func spawnAndWait(_ argv: CArgv) throws -> Int {
        let status = cfloor_spawn_wait(argv.pointer)
        guard status == 0 else { throw BenchError("C floor: spawn/wait returned \(status)") }
        return 1
    }

    static func spawnAndWaitInSession(_ argv: CArgv) throws -> Int {
        let status = cfloor_spawn_wait_setsid(argv.pointer)
        guard status == 0 else { throw BenchError("C floor: spawn/wait returned \(status)") }
        return 1
    }

    /// `count` children started back to back, then reaped one by one.
    static func concurrent(_ argv: CArgv, count: Int) throws -> Int {
        var pids: [pid_t] = []
        pids.reserveCapacity(count)
        for _ in 0..<count {
            let pid = cfloor_spawn_null(argv.pointer)
            guard pid > 0 else { throw BenchError("C floor: posix_spawn returned \(pid)") }
            pids.append(pid)
        }
        var done = 0
        for pid in pids where cfloor_wait(pid) == 0 { done += 1 }
        return done
    }

    static func stream(_ argv: CArgv, bufferSize: Int = 64 * 1024) throws -> Int {
        var fd: Int32 = -1
        let pid = cfloor_spawn_reader(argv.pointer, &fd)
        guard pid > 0 else { throw BenchError("C floor: posix_spawn returned \(pid)") }
        let n = cfloor_read_all(fd, bufferSize)
        let status = cfloor_wait(pid)
        guard n >= 0, status == 0 else { throw BenchError("C floor: read \(n), status \(status)") }
        return Int(n)
    }

    static func lines(_ argv: CArgv) throws -> Int {
        var fd: Int32 = -1
        let pid = cfloor_spawn_reader(argv.pointer, &fd)
        guard pid > 0 else { throw BenchError("C floor: posix_spawn returned \(pid)") }
        let n = cfloor_count_lines(fd)
        let status = cfloor_wait(pid)
        guard n >= 0, status == 0 else { throw BenchError("C floor: lines \(n), status \(status)") }
        return Int(n)
    }

    static func roundTrip(_ argv: CArgv, _ data: [UInt8]) throws -> Int {
        let n = data.withUnsafeBufferPointer { cfloor_roundtrip(argv.pointer, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw BenchError("C floor: round trip \(n)") }
        return Int(n)
    }

    static func slowConsumer(_ argv: CArgv) throws -> Int {
        var fd: Int32 = -1
        let pid = cfloor_spawn_reader(argv.pointer, &fd)
        guard pid > 0 else { throw BenchError("C floor: posix_spawn returned \(pid)") }
        let n = cfloor_read_slowly(fd, 1000)
        _ = cfloor_wait(pid)
        return Int(n)
    }
}
