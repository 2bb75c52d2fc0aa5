/// Limits a request may ask for: each has a default (used when the request leaves it
/// out) and a server-side maximum (a request asking for more gets a 400).
public struct RunLimits: Sendable, Hashable {
    /// `RLIMIT_CPU`, whole seconds (a fractional request is rounded up).
    public var cpuSeconds: Int
    /// `RLIMIT_AS`, bytes of address space.
    public var memoryBytes: Int
    /// Wall-clock timeout, seconds (fractions allowed).
    public var wallSeconds: Double
    /// Output cap, bytes, for each of stdout and stderr.
    public var outputBytes: Int

    public init(cpuSeconds: Int, memoryBytes: Int, wallSeconds: Double, outputBytes: Int) {
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.wallSeconds = wallSeconds
        self.outputBytes = outputBytes
    }

    /// The defaults when a request gives no limits.
    public static let defaultLimits = RunLimits(
        cpuSeconds: 2, memoryBytes: 256 << 20, wallSeconds: 5, outputBytes: 64 << 10)
    /// The default server-side maxima.
    public static let defaultMaxima = RunLimits(
        cpuSeconds: 10, memoryBytes: 1 << 30, wallSeconds: 30, outputBytes: 1 << 20)
}

/// Everything the server is configured with (the `code-runner` options).
public struct ServerSettings: Sendable {
    /// Address to bind (use 127.0.0.1 unless you put a proxy in front).
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 picks a free one (the chosen port is printed on stdout).
    public var port: Int = 8080

    /// Limits of a request that gives none.
    public var defaults: RunLimits = .defaultLimits
    /// The most a request may ask for.
    public var maxima: RunLimits = .defaultMaxima

    /// Children running at once; more requests wait for a slot.
    public var maxConcurrentRuns: Int = 4
    /// Requests waiting for a slot at once; past that a request gets 503 at once.
    public var maxQueuedRuns: Int = 64
    /// How long a request waits for a slot before it gets 503.
    public var queueTimeout: Duration = .seconds(10)
    /// Largest request body accepted (413 past it).
    public var maxBodyBytes: Int = 1 << 20

    /// Where per-request scratch directories are created (one per run, always removed).
    /// Must be owned by the server's uid, writable by nobody else, not a symlink,
    /// with every directory above it writable by nobody else (or sticky): else the
    /// server does not start (see ``ScratchRoot``). Made (and removed at exit) if missing.
    /// nil: a fresh `$TMPDIR/code-runner-<random>` (or under /tmp), made at start and
    /// removed at exit.
    public var scratchRoot: String? = nil

    /// The user ids runs get when the server runs as root, one of its own per run
    /// at a time (its group id is the same number): no run can signal, trace or
    /// read another's processes or files. At least ``maxConcurrentRuns`` of them.
    /// Ignored (children keep the server's ids) when the server is not root.
    public var sandboxUserIDs: ClosedRange<UInt32> = 60000...60999

    /// `RLIMIT_NPROC` for children, applied only with the uid drop (the count is per
    /// user: with a uid per run, per run; it is not enforced for root).
    public var processLimit: Int = 128
    /// `RLIMIT_NOFILE` for children.
    public var openFilesLimit: Int = 64
    /// `RLIMIT_FSIZE` for children: the largest file a run may write, bytes.
    public var fileSizeLimit: Int = 16 << 20

    /// The Python interpreter; nil: found at startup (see ``Interpreters``).
    public var python: String? = nil

    public init() {}

    /// Checks the settings are coherent; returns a message naming the problem.
    public func validationError() -> String? {
        if port < 0 || port > 65535 { return "--port must be in 0...65535" }
        if maxConcurrentRuns < 1 { return "--max-concurrent-runs must be at least 1" }
        if maxQueuedRuns < 0 { return "--max-queued-runs must not be negative" }
        if maxBodyBytes < 64 { return "--max-body-bytes must be at least 64" }
        if sandboxUserIDs.lowerBound == 0 { return "--uid-pool must not contain uid 0" }
        if sandboxUserIDs.count < maxConcurrentRuns {
            return "--uid-pool holds \(sandboxUserIDs.count) ids, fewer than --max-concurrent-runs (\(maxConcurrentRuns)): each run needs one of its own"
        }
        if processLimit < 1 || openFilesLimit < 4 || fileSizeLimit < 0 {
            return "--nproc must be at least 1, --nofile at least 4, --max-file-bytes not negative"
        }
        let pairs: [(String, Double, Double)] = [
            ("cpu-seconds", Double(defaults.cpuSeconds), Double(maxima.cpuSeconds)),
            ("memory-bytes", Double(defaults.memoryBytes), Double(maxima.memoryBytes)),
            ("wall-seconds", defaults.wallSeconds, maxima.wallSeconds),
            ("output-bytes", Double(defaults.outputBytes), Double(maxima.outputBytes)),
        ]
        for (name, value, maximum) in pairs {
            if !(value > 0) || !(maximum > 0) { return "--default-\(name) and --max-\(name) must be positive" }
            if value > maximum { return "--default-\(name) (\(value)) is above --max-\(name) (\(maximum))" }
        }
        return nil
    }
}
