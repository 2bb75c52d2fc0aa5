import AsyncSpawn
import Foundation
import Hummingbird
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The code-runner HTTP server: `GET /health`, `POST /run`, `POST /run?stream=1`.
public struct CodeRunnerServer: Sendable {
    public let settings: ServerSettings
    let sandbox: Sandbox
    let slots: RunSlots
    let logger: Logger

    /// Opens (or makes) and checks the scratch root, and finds the interpreters
    /// (runs a probe of each in the sandbox): once this returns, the server can
    /// answer runs.
    public static func prepare(_ settings: ServerSettings, logger: Logger) async throws -> CodeRunnerServer {
        if let problem = settings.validationError() { throw ServerError(problem) }
        let root: ScratchRoot
        do {
            let temporary = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            root = try ScratchRoot.open(given: settings.scratchRoot, temporaryDirectory: temporary)
        } catch {
            throw ServerError(error.description)
        }
        var sandbox = Sandbox(settings: settings, scratchRoot: root, logger: logger)
        var info = stat()
        if let users = sandbox.users, fstat(root.descriptor, &info) == 0, info.st_mode & S_IXOTH == 0 {
            // The runs' users must pass through it to reach their own run directories.
            await Self.removeScratchRoot(root, logger: logger)
            throw ServerError("the scratch root \(root.path) must be searchable by the runs' uids \(users.range) (chmod o+x)")
        }
        logger.info("scratch root \(root.path)\(root.made == nil ? "" : " (made at start, removed at exit)")")
        sandbox.interpreters = await Interpreters.resolve(
            sandbox: sandbox, explicitPython: settings.python, logger: logger)
        if let explicit = settings.python, sandbox.interpreters[.python3] == nil {
            await Self.removeScratchRoot(root, logger: logger)
            throw ServerError("--python \(explicit) does not run in the sandbox (see the log above)")
        }
        for language in Language.allCases {
            logger.info("\(language.rawValue): \(sandbox.interpreters[language] ?? "not available")")
        }
        if let users = sandbox.users {
            logger.info("each run gets a uid of its own from \(users.range) (its gid: the same number)")
        } else {
            logger.info("not root: children run with the server's uid \(geteuid())")
        }
        return CodeRunnerServer(
            settings: settings, sandbox: sandbox,
            slots: RunSlots(capacity: settings.maxConcurrentRuns, maxQueued: settings.maxQueuedRuns),
            logger: logger)
    }

    /// Removes the scratch root if this server made it (on the removal thread).
    static func removeScratchRoot(_ root: ScratchRoot, logger: Logger) async {
        let problems = await ScratchRemover.shared.perform { root.removeIfMade() }
        if !problems.isEmpty { logger.error("the scratch root \(root.path) was not entirely removed: \(problems)") }
    }

    /// The directory runs are created in.
    public var scratchRoot: String { sandbox.scratchRoot.path }

    /// Serves until SIGINT/SIGTERM (graceful: running requests finish), then removes
    /// the scratch root if it made it. `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "code-runner"),
            onServerRunning: { channel in
                onListening(channel.localAddress?.port ?? settings.port)
            },
            logger: logger
        )
        do {
            try await app.runService()
        } catch {
            await Self.removeScratchRoot(sandbox.scratchRoot, logger: logger)
            throw error
        }
        await Self.removeScratchRoot(sandbox.scratchRoot, logger: logger)
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ -> Response in
            let (running, queued) = slots.counts
            var languages: [(String, String)] = []
            for language in Language.allCases {
                languages.append((language.rawValue, sandbox.interpreters[language].map(JSON.string) ?? "null"))
            }
            let body = JSON.object([
                ("status", JSON.string("ok")),
                ("languages", JSON.object(languages)),
                ("running", "\(running)"),
                ("queued", "\(queued)"),
                ("max_concurrent_runs", "\(settings.maxConcurrentRuns)"),
                ("maxima", settings.maxima.json()),
                ("defaults", settings.defaults.json()),
            ])
            return Self.jsonResponse(.ok, body)
        }
        router.post("/run") { request, context -> Response in
            try await handleRun(request, context: context)
        }
        return router
    }

    static func jsonResponse(_ status: HTTPResponse.Status, _ json: String, close: Bool = false) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if close { headers[.connection] = "close" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json + "\n")))
    }

    static func errorResponse(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) -> HTTPError {
        var headers: HTTPFields = [.connection: "close"]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        return HTTPError(status, headers: headers, message: message)
    }

    // MARK: POST /run

    func handleRun(_ request: Request, context: BasicRequestContext) async throws -> Response {
        var request = request
        let limit = settings.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw Self.errorResponse(
                .contentTooLarge, "the request body is \(length) bytes; this server accepts at most \(limit)")
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Self.errorResponse(
                .contentTooLarge, "the request body is larger than \(limit) bytes, this server's maximum")
        }
        let job: RunJob
        do {
            job = try RunJob.parse(Array(buffer: body), defaults: settings.defaults, maxima: settings.maxima)
        } catch {
            throw Self.errorResponse(.badRequest, error.message)
        }
        guard sandbox.interpreters[job.language] != nil else {
            throw Self.errorResponse(.badRequest, "language '\(job.language.rawValue)' is not available on this server")
        }
        let stream =
            request.uri.queryParameters.get("stream").map { ["1", "true", "yes"].contains($0.lowercased()) }
            ?? (request.headers[.accept]?.contains("text/event-stream") ?? false)

        if stream {
            // The status goes out before the body, so get the slot first (503 while we
            // still can). The lease is released when the body ends, or when the
            // response is dropped without its body being written.
            let lease = try await acquireSlot()
            let request = request
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-store", .connection: "close"],
                body: ResponseBody { [sandbox, logger] writer in
                    defer { lease.release() }
                    try await request.body.consumeWithCancellationOnInboundClose { _ in
                        try await Self.streamRun(job, sandbox: sandbox, logger: logger, to: &writer)
                    }
                    try await writer.finish(nil)
                })
        }

        // Hummingbird does not cancel a handler when its client goes away; this does:
        // the inbound side of the connection closing cancels the operation, and the
        // cancellation tears the child's process group down.
        let report = try await request.body.consumeWithCancellationOnInboundClose { _ in
            let lease = try await acquireSlot()
            defer { lease.release() }
            return try await sandbox.run(job)
        }
        return Self.jsonResponse(.ok, report.json(), close: true)
    }

    func acquireSlot() async throws -> RunSlots.Lease {
        do {
            return try await slots.acquire(timeout: settings.queueTimeout)
        } catch RunSlots.Refusal.queueFull {
            let (running, queued) = slots.counts
            throw Self.errorResponse(
                .serviceUnavailable,
                "too many runs: \(running) running and \(queued) waiting (the most this server queues); try again later",
                retryAfter: 1)
        } catch RunSlots.Refusal.timedOut {
            throw Self.errorResponse(
                .serviceUnavailable,
                "no run slot became free within \(settings.queueTimeout) (\(settings.maxConcurrentRuns) runs at once); try again later",
                retryAfter: 1)
        }
    }

    /// Server-sent events: `started`, then `stdout`/`stderr` as the child writes, then
    /// one `report`. Each `data:` is one line of JSON. If a write fails (the client
    /// went away), the error cancels the run: the child's group is torn down.
    static func streamRun(
        _ job: RunJob, sandbox: Sandbox, logger: Logger,
        to writer: inout any ResponseBodyWriter
    ) async throws {
        enum Item: Sendable {
            case event(RunEvent)
            case report(RunReport)
            case failure(String)
        }
        let (items, continuation) = AsyncStream.makeStream(of: Item.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                do {
                    let report = try await sandbox.run(job) { continuation.yield(.event($0)) }
                    continuation.yield(.report(report))
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    logger.error("run failed: \(error)")
                    continuation.yield(.failure("\(error)"))
                }
            }
            var decoders: [OutputStream: UTF8Chunker] = [.stdout: UTF8Chunker(), .stderr: UTF8Chunker()]
            for await item in items {
                let text: String
                switch item {
                case .event(.started(let pid)):
                    text = sse("started", JSON.object([("pid", "\(pid)")]))
                case .event(.output(let stream, let bytes)):
                    let chunk = decoders[stream]!.append(bytes)
                    if chunk.isEmpty { continue }
                    text = sse(stream.rawValue, JSON.string(chunk))
                case .report(let report):
                    var flushed = ""
                    for stream in [OutputStream.stdout, .stderr] {
                        let rest = decoders[stream]!.flush()
                        if !rest.isEmpty { flushed += sse(stream.rawValue, JSON.string(rest)) }
                    }
                    text = flushed + sse("report", report.json())
                case .failure(let message):
                    text = sse("error", JSON.object([("message", JSON.string(message))]))
                }
                try await writer.write(ByteBuffer(string: text))
            }
            try await group.waitForAll()
        }
    }

    static func sse(_ event: String, _ data: String) -> String {
        "event: \(event)\ndata: \(data)\n\n"
    }
}

/// A startup failure with a message for the operator.
public struct ServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Turns byte chunks into text without splitting a UTF-8 sequence across two
/// events: an incomplete sequence at the end of a chunk waits for the next one.
struct UTF8Chunker {
    private var pending: [UInt8] = []

    mutating func append(_ bytes: [UInt8]) -> String {
        pending.append(contentsOf: bytes)
        let cut = completePrefixLength(pending)
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix that does not end inside a multi-byte sequence.
    private func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        // Look back at most 3 bytes for the start of the last sequence.
        var i = n - 1
        var back = 0
        while i >= 0 && back < 4 {
            let byte = b[i]
            if byte & 0xC0 != 0x80 {
                // A lead byte (or ASCII): how long should its sequence be?
                let length = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                return n - i >= length ? n : i
            }
            i -= 1
            back += 1
        }
        return n  // only continuation bytes: invalid anyway, let the decoder replace them
    }
}
