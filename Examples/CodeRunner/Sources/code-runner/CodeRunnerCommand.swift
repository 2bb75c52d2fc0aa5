import ArgumentParser
import CodeRunner
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A byte count: N, or N with a K, M, G suffix (powers of 1024).
struct ByteCount: ExpressibleByArgument {
    var value: Int
    init?(argument: String) {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var text = Substring(argument.uppercased())
        var factor = 1
        if let last = text.last, let unit = units[last] {
            factor = unit
            text = text.dropLast()
        }
        guard let n = Int(text), n >= 0, n <= Int.max / factor else { return nil }
        value = n * factor
    }
    init(_ value: Int) { self.value = value }
    var defaultValueDescription: String { "\(value)" }
}

@main
struct CodeRunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code-runner",
        abstract: "An HTTP server that runs untrusted python3 and sh code with AsyncSpawn.",
        discussion: """
            GET /health answers 200 once the server is ready. POST /run takes \
            {"language": "python3"|"sh", "source": "...", "stdin": "...", "limits": {...}} \
            and answers with the run's report; POST /run?stream=1 streams server-sent \
            events. See Examples/CodeRunner/README.md.
            """)

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind (0: any free port; the port is printed on stdout).") var port = 8080

    @Option(help: "CPU seconds of a run that gives none.") var defaultCpuSeconds = RunLimits.defaultLimits.cpuSeconds
    @Option(help: "Address space (bytes; K/M/G) of a run that gives none.")
    var defaultMemoryBytes = ByteCount(RunLimits.defaultLimits.memoryBytes)
    @Option(help: "Wall-clock seconds of a run that gives none.") var defaultWallSeconds = RunLimits.defaultLimits
        .wallSeconds
    @Option(help: "Output cap (bytes per stream; K/M/G) of a run that gives none.")
    var defaultOutputBytes = ByteCount(RunLimits.defaultLimits.outputBytes)

    @Option(help: "Most CPU seconds a request may ask for.") var maxCpuSeconds = RunLimits.defaultMaxima.cpuSeconds
    @Option(help: "Most address space a request may ask for (bytes; K/M/G).")
    var maxMemoryBytes = ByteCount(RunLimits.defaultMaxima.memoryBytes)
    @Option(help: "Most wall-clock seconds a request may ask for.") var maxWallSeconds = RunLimits.defaultMaxima
        .wallSeconds
    @Option(help: "Most output a request may ask for (bytes per stream; K/M/G).")
    var maxOutputBytes = ByteCount(RunLimits.defaultMaxima.outputBytes)

    @Option(help: "Runs at once; more requests wait.") var maxConcurrentRuns = 4
    @Option(help: "Requests waiting for a run slot at once; more get 503 at once.") var maxQueuedRuns = 64
    @Option(help: "Seconds a request waits for a run slot before it gets 503.") var queueTimeoutSeconds = 10.0
    @Option(help: "Largest request body (bytes; K/M/G); larger gets 413.") var maxBodyBytes = ByteCount(1 << 20)

    @Option(
        help:
            "Directory for per-run scratch directories: owned by this server's uid, writable by nobody else, not a symlink (default: a fresh $TMPDIR/code-runner-XXXXXXXXXXXX, removed at exit)."
    )
    var scratchRoot: String?
    @Option(
        help:
            "User ids for runs when the server runs as root, FIRST-LAST: each run gets one of its own (group id: the same number); at least --max-concurrent-runs of them."
    )
    var uidPool = "60000-60999"
    @Option(help: "RLIMIT_NPROC of children (only with the uid drop: it counts the user's processes).") var nproc = 128
    @Option(help: "RLIMIT_NOFILE of children.") var nofile = 64
    @Option(help: "RLIMIT_FSIZE of children: largest file a run may write (bytes; K/M/G).")
    var maxFileBytes = ByteCount(16 << 20)
    @Option(
        help:
            "The Python interpreter (default: the one python3 in PATH runs, else /usr/local/bin/python3 or /usr/bin/python3, whichever works in the sandbox)."
    )
    var python: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"

    func run() async throws {
        var settings = ServerSettings()
        settings.host = host
        settings.port = port
        settings.defaults = RunLimits(
            cpuSeconds: defaultCpuSeconds, memoryBytes: defaultMemoryBytes.value,
            wallSeconds: defaultWallSeconds, outputBytes: defaultOutputBytes.value)
        settings.maxima = RunLimits(
            cpuSeconds: maxCpuSeconds, memoryBytes: maxMemoryBytes.value,
            wallSeconds: maxWallSeconds, outputBytes: maxOutputBytes.value)
        settings.maxConcurrentRuns = maxConcurrentRuns
        settings.maxQueuedRuns = maxQueuedRuns
        guard queueTimeoutSeconds >= 0, queueTimeoutSeconds.isFinite else {
            throw ValidationError("--queue-timeout-seconds must be a non-negative number")
        }
        settings.queueTimeout = .milliseconds(Int64(queueTimeoutSeconds * 1000))
        settings.maxBodyBytes = maxBodyBytes.value
        settings.scratchRoot = scratchRoot
        let bounds = uidPool.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = UInt32(bounds[0]), let last = UInt32(bounds[1]), first <= last,
            last < UInt32.max
        else {
            throw ValidationError("--uid-pool must be FIRST-LAST (numeric user ids, FIRST <= LAST), not '\(uidPool)'")
        }
        settings.sandboxUserIDs = first...last
        settings.processLimit = nproc
        settings.openFilesLimit = nofile
        settings.fileSizeLimit = maxFileBytes.value
        settings.python = python
        if let problem = settings.validationError() { throw ValidationError(problem) }

        // Logs on stderr; stdout carries only the "listening" line.
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "code-runner")
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
        logger.logLevel = level

        let server: CodeRunnerServer
        do {
            server = try await CodeRunnerServer.prepare(settings, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        let host = self.host
        try await server.run { port in
            // One line on stdout, for scripts and tests that start the server on port 0.
            let line = Array("code-runner listening on http://\(host):\(port)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
    }
}
