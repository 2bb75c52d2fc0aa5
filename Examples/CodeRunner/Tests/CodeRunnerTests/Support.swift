import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The report the server answers with (the `spawn` CLI's JSON report fields).
struct Report: Decodable {
    struct Failure: Decodable {
        var step: String
        var errno: Int
        var message: String
    }
    struct Limits: Decodable {
        var cpu_seconds: Int
        var memory_bytes: Int
        var wall_seconds: Double
        var output_bytes: Int
    }
    var outcome: String
    var exit_code: Int?
    var signal: Int?
    var pid: Int?
    var wall_time_ms: Double
    var user_time_ms: Double
    var system_time_ms: Double
    var max_rss_kib: Int
    var stdout: String
    var stderr: String
    var stdout_bytes: Int
    var stderr_bytes: Int
    var stdout_truncated: Bool
    var stderr_truncated: Bool
    var error: Failure?
    var limits: Limits
}

/// A `POST /run` body.
struct RunBody: Encodable {
    var language: String
    var source: String
    var stdin: String? = nil
    var limits: [String: Double]? = nil
}

struct HTTPAnswer {
    var status: Int
    var headers: HTTPHeaders
    var body: String
}

enum TestFailure: Error, CustomStringConvertible {
    case message(String)
    var description: String {
        switch self {
        case .message(let m): m
        }
    }
}

/// One `code-runner` process on 127.0.0.1 and a free port, with a scratch root of
/// its own; stopped (SIGTERM, then SIGKILL) at the end of `withServer`.
final class RunningServer: Sendable {
    let process: Process
    let port: Int
    let scratchRoot: String
    let logPath: String

    var base: String { "http://127.0.0.1:\(port)" }

    init(process: Process, port: Int, scratchRoot: String, logPath: String) {
        self.process = process
        self.port = port
        self.scratchRoot = scratchRoot
        self.logPath = logPath
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    // MARK: HTTP

    func get(_ path: String) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: base + path)
        request.method = .GET
        return try await send(request)
    }

    func post(
        _ path: String, raw: [UInt8], contentType: String = "application/json",
        client: HTTPClient = .shared, timeout: Duration = TestTime.hang
    ) async throws -> HTTPAnswer {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(bytes: raw))
        return try await send(request, client: client, timeout: timeout)
    }

    func post(
        _ path: String, json body: RunBody, client: HTTPClient = .shared, timeout: Duration = TestTime.hang
    ) async throws -> HTTPAnswer {
        try await post(path, raw: Array(try JSONEncoder().encode(body)), client: client, timeout: timeout)
    }

    /// Runs a body and decodes the report; fails the test on anything but 200.
    /// `timeout` bounds the request (a hang detector).
    func run(
        _ body: RunBody, client: HTTPClient = .shared, timeout: Duration = TestTime.hang,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Report {
        let answer = try await post("/run", json: body, client: client, timeout: timeout)
        try #require(answer.status == 200, "status \(answer.status): \(answer.body)", sourceLocation: sourceLocation)
        return try JSONDecoder().decode(Report.self, from: Data(answer.body.utf8))
    }

    func send(
        _ request: HTTPClientRequest, client: HTTPClient = .shared,
        timeout: Duration = TestTime.hang
    ) async throws -> HTTPAnswer {
        let response = try await client.execute(request, timeout: timeout.timeAmount)
        let body = try await response.body.collect(upTo: 16 << 20)
        return HTTPAnswer(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    /// The entries left in the scratch root (there should be none between runs).
    func scratchEntries() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: scratchRoot)) ?? []
    }

    /// Waits (bounded by `within`, a hang detector) for the scratch root to be
    /// empty; returns what is left.
    func waitForEmptyScratch(within bound: Duration = TestTime.hang) async -> [String] {
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline {
            if scratchEntries().isEmpty { return [] }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return scratchEntries()
    }

    /// Waits (bounded by `within`, a hang detector) until `GET /health` shows
    /// `"running": count`; false if it never did.
    func waitUntilRunning(_ count: Int, within bound: Duration = TestTime.hang) async throws -> Bool {
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline {
            if try await get("/health").body.contains("\"running\": \(count)") { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func stop() async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        // Nothing runs any more: it should stop at once (then SIGKILL).
        let deadline = ContinuousClock.now + TestTime.endsBy(.zero)
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The `code-runner` binary built next to this test bundle.
func serverBinary() -> String {
    if let given = ProcessInfo.processInfo.environment["CODE_RUNNER_BINARY"], !given.isEmpty { return given }
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var directory = exe.deletingLastPathComponent()
    // The test binary may sit inside a bundle directory (…/CodeRunnerPackageTests.xctest/…).
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("code-runner").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/code-runner").path
}

/// Makes a directory everyone may enter (the sandbox user must reach its run directory).
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw TestFailure.message("mkdtemp failed")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    chmod(path, 0o755)
    return path
}

/// Where a test server keeps its runs' scratch directories.
enum ScratchChoice: Sendable {
    /// A fresh directory the test makes (owned by the test's uid, mode 0711) and
    /// gives as `--scratch-root`; checked empty after the test.
    case fresh
    /// No `--scratch-root`: the server makes its own under `temporaryDirectory`
    /// (its `TMPDIR`). The test finds it as the one new entry there.
    case serverDefault(temporaryDirectory: String)
}

/// How a test server is started, beyond its options.
struct Launch: Sendable {
    /// Where its scratch root is.
    var scratch: ScratchChoice = .fresh
    /// A shell command the server's process runs before it becomes the server
    /// (`ulimit -n 200`): the server is started as `sh -c 'PREFIX; exec server ...'`.
    var shellPrefix: String? = nil
    /// Called with the server's pid before the server runs (its process waits,
    /// in `sh`, until this returns: the pid is known before the server exists).
    var beforeStart: (@Sendable (Int32) async throws -> Void)? = nil
    /// Runs the server as this uid and gid (through `setpriv`, from a root test
    /// process), with a ``ScratchChoice/fresh`` scratch root of that uid.
    var user: UInt32? = nil
}

/// What a server printed on its stdout (the "listening" line), filled by a
/// readability handler.
final class PrintedText: Sendable {
    private let text = Mutex<String>("")
    func append(_ more: String) { text.withLock { $0 += more } }
    var value: String { text.withLock { $0 } }
}

/// Starts the `code-runner` binary with `arguments` as `launch` says; the process
/// is running (or held) when this returns. The caller owns the process.
private func startServerProcess(
    _ arguments: [String], launch: Launch, logPath: String, printed: PrintedText
) throws -> (Process, Pipe?) {
    let process = Process()
    var environment = ProcessInfo.processInfo.environment
    if case .serverDefault(let temporaryDirectory) = launch.scratch { environment["TMPDIR"] = temporaryDirectory }
    process.environment = environment
    var prefix: [String] = []
    if let shellPrefix = launch.shellPrefix { prefix.append(shellPrefix) }
    if launch.beforeStart != nil { prefix.append("read line") }
    let user = launch.user.map { "setpriv --reuid=\($0) --regid=\($0) --clear-groups " } ?? ""
    if prefix.isEmpty && user.isEmpty {
        process.executableURL = URL(fileURLWithPath: serverBinary())
        process.arguments = arguments
    } else {
        // exec (and setpriv's) keep the pid: the shell's pid is the server's.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments =
            ["-c", (prefix + ["exec \(user)\"$0\" \"$@\""]).joined(separator: " && "), serverBinary()] + arguments
    }
    let stdout = Pipe()
    process.standardOutput = stdout
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
    let hold = launch.beforeStart == nil ? nil : Pipe()
    if let hold {
        process.standardInput = hold
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    stdout.fileHandleForReading.readabilityHandler = { handle in
        let data = handle.availableData
        if data.isEmpty {
            handle.readabilityHandler = nil
        } else {
            printed.append(String(decoding: data, as: UTF8.self))
        }
    }
    try process.run()
    return (process, hold)
}

/// Starts a server, waits until it prints its port and answers /health, runs `body`,
/// checks that no scratch directory is left, and stops the server (whatever happens).
///
/// A run that gives no wall limit gets ``TestTime/hang`` (a run meant to end by
/// itself is not cut short on a loaded machine), and a request may ask for up to
/// ``TestTime/childLifetime`` (a run that something else must end).
func withServer(
    _ arguments: [String] = [], launch: Launch = Launch(), _ body: (RunningServer) async throws -> Void
) async throws {
    let work = try makeTemporaryDirectory("code-runner-test")
    var scratch = ""
    var scratchArguments: [String] = []
    if case .fresh = launch.scratch {
        scratch = work + "/scratch"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        chmod(scratch, 0o711)
        if let user = launch.user { chown(scratch, user, user) }
        scratchArguments = ["--scratch-root", scratch]
    }
    let logPath = work + "/server.log"
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)

    let printed = PrintedText()
    let (process, hold) = try startServerProcess(
        [
            "--host", "127.0.0.1", "--port", "0",
            "--default-wall-seconds", "\(TestTime.hang.inSeconds)",
            "--max-wall-seconds", "\(TestTime.childLifetime.inSeconds)",
        ] + scratchArguments + arguments, launch: launch, logPath: logPath, printed: printed)

    var server: RunningServer? = nil
    do {
        var entriesBefore: Set<String> = []
        if case .serverDefault(let temporaryDirectory) = launch.scratch {
            entriesBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory)) ?? [])
        }
        if let beforeStart = launch.beforeStart, let hold {
            try await beforeStart(process.processIdentifier)
            if case .serverDefault(let temporaryDirectory) = launch.scratch {
                entriesBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory)) ?? [])
            }
            hold.fileHandleForWriting.write(Data("go\n".utf8))
        }
        // The port, from "code-runner listening on http://127.0.0.1:PORT".
        // Generous (TestTime.serverStart): at startup the server probes its interpreters.
        let deadline = ContinuousClock.now + TestTime.serverStart
        var port: Int? = nil
        while port == nil && ContinuousClock.now < deadline && process.isRunning {
            let text = printed.value
            if let range = text.range(of: "listening on http://127.0.0.1:") {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                port = Int(digits)
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard let port else {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw TestFailure.message("the server did not start: \(log)")
        }
        if case .serverDefault(let temporaryDirectory) = launch.scratch {
            // The one entry the server made in its TMPDIR (none if it used one it found).
            let after = Set((try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory)) ?? [])
            let made = after.subtracting(entriesBefore)
            if made.count == 1, let name = made.first { scratch = temporaryDirectory + "/" + name }
        }
        let running = RunningServer(process: process, port: port, scratchRoot: scratch, logPath: logPath)
        server = running
        let health = try await running.get("/health")
        try #require(health.status == 200, "GET /health: \(health.status) \(health.body)")

        try await body(running)

        let left = await running.waitForEmptyScratch()
        #expect(left.isEmpty, "scratch directories left behind: \(left)")
        let stillHealthy = try await running.get("/health")
        #expect(stillHealthy.status == 200)
    } catch {
        if let server { print("server log:\n\(server.log)") }
        await (server ?? RunningServer(process: process, port: 0, scratchRoot: scratch, logPath: logPath)).stop()
        try? FileManager.default.removeItem(atPath: work)
        throw error
    }
    await server?.stop()
    try? FileManager.default.removeItem(atPath: work)
}

/// Starts a server that must refuse to start (its scratch root is wrong, say):
/// waits (bounded by ``TestTime/serverStart``) for it to exit, and returns its exit
/// status and log. A server that starts listening instead is stopped and fails
/// the test.
func serverRefusal(_ arguments: [String]) async throws -> (status: Int32, log: String) {
    let work = try makeTemporaryDirectory("code-runner-test")
    defer { try? FileManager.default.removeItem(atPath: work) }
    let logPath = work + "/server.log"
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    let printed = PrintedText()
    let (process, _) = try startServerProcess(
        ["--host", "127.0.0.1", "--port", "0"] + arguments, launch: Launch(), logPath: logPath, printed: printed)
    let deadline = ContinuousClock.now + TestTime.serverStart
    while process.isRunning && ContinuousClock.now < deadline
        && !printed.value.contains("listening on")
    {
        try await Task.sleep(for: .milliseconds(50))
    }
    let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    if process.isRunning {
        await RunningServer(process: process, port: 0, scratchRoot: "", logPath: logPath).stop()
        throw TestFailure.message("the server started with \(arguments): \(log)")
    }
    process.waitUntilExit()
    return (process.terminationStatus, log)
}

/// True while `pid` exists and is not a zombie (a torn-down grandchild may stay a
/// zombie until init reaps it: that is gone for our purpose).
func processIsAlive(_ pid: Int) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // "pid (comm) S ..." — the state follows the last ')'.
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
    return state != "Z" && state != "X"
}

/// Waits (bounded by `within`, a hang detector) until none of `pids` is alive;
/// returns the ones still alive, after killing them (they live for
/// TestTime.childLifetime: a failed test must not leave them behind).
func waitUntilGone(_ pids: [Int], within bound: Duration = TestTime.hang) async -> [Int] {
    let deadline = ContinuousClock.now + bound
    while ContinuousClock.now < deadline {
        let alive = pids.filter(processIsAlive)
        if alive.isEmpty { return [] }
        try? await Task.sleep(for: .milliseconds(50))
    }
    let alive = pids.filter(processIsAlive)
    for pid in alive { kill(pid_t(pid), SIGKILL) }
    return alive
}

/// A file a run waits for before it goes on, created by the test when it has seen
/// what it needed (the first output, a refused request): the run then holds its
/// slot, or keeps running, exactly as long as the test needs, with no sleep whose
/// length is a guess. In a directory the sandbox user can reach.
struct Gate: Sendable {
    let directory: String
    var path: String { directory + "/go" }

    init() throws {
        directory = try makeTemporaryDirectory("code-runner-gate")
    }

    /// Lets the waiting run go on.
    func open() {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd >= 0 { close(fd) }
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// sh lines that wait for the gate.
    var shellWait: String { "while [ ! -e '\(path)' ]; do sleep 0.01; done" }

    /// Python lines that wait for the gate.
    var pythonWait: String { "import os, time\nwhile not os.path.exists('\(path)'):\n    time.sleep(0.01)\n" }
}

/// One server-sent event.
struct ServerSentEvent: Sendable {
    var event: String
    var data: String
    /// Seconds since the request was sent.
    var at: Double
}

/// Splits an SSE byte stream into events.
struct SSEParser {
    private var buffer = ""
    mutating func feed(_ text: String) -> [(String, String)] {
        buffer += text
        var events: [(String, String)] = []
        while let range = buffer.range(of: "\n\n") {
            let block = buffer[..<range.lowerBound]
            buffer.removeSubrange(..<range.upperBound)
            var event = "message"
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("event: ") {
                    event = String(line.dropFirst(7))
                } else if line.hasPrefix("data: ") {
                    data.append(String(line.dropFirst(6)))
                }
            }
            events.append((event, data.joined(separator: "\n")))
        }
        return events
    }
}

/// Decodes a JSON string literal (an SSE `stdout`/`stderr` data line).
func decodeJSONString(_ literal: String) throws -> String {
    try JSONDecoder().decode(String.self, from: Data(literal.utf8))
}
