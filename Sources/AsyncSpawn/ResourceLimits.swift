#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One side (soft or hard) of a resource limit.
public enum LimitValue: Sendable, Hashable, CustomStringConvertible {
    /// No limit (`RLIM_INFINITY`).
    case unlimited
    /// A limit in the resource's unit (bytes, seconds, count, ...).
    case value(UInt64)

    var raw: UInt64 {
        switch self {
        case .unlimited: UInt64.max  // RLIM64_INFINITY
        case .value(let v): v
        }
    }

    init(raw: UInt64) { self = raw == UInt64.max ? .unlimited : .value(raw) }

    /// `unlimited` or the number.
    public var description: String {
        switch self {
        case .unlimited: "unlimited"
        case .value(let v): "\(v)"
        }
    }
}

/// A soft and a hard limit for one resource, as `prlimit(1)` sets them.
///
/// `nil` for either side leaves that side as the parent has it. The child may
/// lower its hard limit; raising it needs `CAP_SYS_RESOURCE`.
public struct Limit: Sendable, Hashable {
    /// The limit the kernel enforces (signals or errors past it).
    public var soft: LimitValue?
    /// The ceiling up to which the child may raise its soft limit.
    public var hard: LimitValue?

    /// Soft and hard, each optional (nil: leave as is).
    public init(soft: LimitValue?, hard: LimitValue?) {
        self.soft = soft
        self.hard = hard
    }

    /// Soft = hard = `value`.
    public init(_ value: LimitValue) {
        self.init(soft: value, hard: value)
    }

    /// Soft = hard = `count` (in the resource's own unit).
    public static func count(_ count: UInt64) -> Limit { Limit(.value(count)) }

    /// Soft = hard = `bytes`.
    public static func bytes(_ bytes: UInt64) -> Limit { Limit(.value(bytes)) }

    /// Soft = hard = whole seconds (rounded up) of `duration`, for `cpuTime`.
    public static func seconds(_ duration: Duration) -> Limit {
        Limit(.value(LimitValue.wholeSeconds(duration)))
    }

    /// Soft = hard = unlimited.
    public static let unlimited = Limit(.unlimited)
}

extension LimitValue {
    /// Seconds, rounded up, of a non-negative duration.
    static func wholeSeconds(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        if s < 0 { return 0 }
        return UInt64(s) + (atto > 0 ? 1 : 0)
    }

    /// Microseconds of a non-negative duration, saturating at `UInt64.max`.
    static func microseconds(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        if s < 0 { return 0 }
        let (whole, overflow) = UInt64(s).multipliedReportingOverflow(by: 1_000_000)
        if overflow { return .max }
        let (total, carry) = whole.addingReportingOverflow(UInt64(atto / 1_000_000_000_000))
        return carry ? .max : total
    }
}

/// The resource limits of the child, one per `RLIMIT_*` resource that `prlimit(1)`
/// knows. Each is applied in the child with `prlimit64(0, ...)` before exec;
/// a limit left `nil` is inherited from the parent.
public struct ResourceLimits: Sendable, Hashable {
    /// `RLIMIT_AS`: bytes of virtual address space. Runtimes that reserve large
    /// address ranges (the JVM, Go, V8) may fail to start under a tight one.
    public var addressSpace: Limit?
    /// `RLIMIT_CORE`: bytes of core file.
    public var coreFileSize: Limit?
    /// `RLIMIT_CPU`: seconds of CPU time; past the soft limit `SIGXCPU`, at the hard `SIGKILL`.
    public var cpuTime: Limit?
    /// `RLIMIT_DATA`: bytes of data segment and heap.
    public var dataSize: Limit?
    /// `RLIMIT_FSIZE`: bytes a file may grow to; past it `SIGXFSZ` / `EFBIG`.
    public var fileSize: Limit?
    /// `RLIMIT_LOCKS`: number of file locks.
    public var fileLocks: Limit?
    /// `RLIMIT_MEMLOCK`: bytes of locked memory.
    public var lockedMemory: Limit?
    /// `RLIMIT_MSGQUEUE`: bytes in POSIX message queues.
    public var messageQueueSize: Limit?
    /// `RLIMIT_NICE`: ceiling of the nice value, as `20 - nice`.
    public var niceCeiling: Limit?
    /// `RLIMIT_NOFILE`: number of open descriptors (one more than the highest allowed).
    public var openFiles: Limit?
    /// `RLIMIT_NPROC`: processes (threads) of the child's real user id. Per user, and
    /// not enforced for root: pair it with a uid drop.
    public var processes: Limit?
    /// `RLIMIT_RSS`: bytes of resident memory (not enforced by current kernels).
    public var residentSetSize: Limit?
    /// `RLIMIT_RTPRIO`: ceiling of the real-time priority.
    public var realtimePriority: Limit?
    /// `RLIMIT_RTTIME`: microseconds of real-time CPU time without blocking.
    public var realtimeCPUTime: Limit?
    /// `RLIMIT_SIGPENDING`: queued signals.
    public var pendingSignals: Limit?
    /// `RLIMIT_STACK`: bytes of main-thread stack.
    public var stackSize: Limit?

    /// No limits set: the child inherits the parent's.
    public init() {}

    /// The unit of a resource's values.
    public enum Unit: Sendable {
        /// Bytes (the CLI accepts K, M, G, T suffixes).
        case bytes
        /// Seconds (RLIMIT_CPU).
        case seconds
        /// Microseconds (RLIMIT_RTTIME).
        case microseconds
        /// A count (files, processes, signals, priorities).
        case count
    }

    /// A description of one resource: its `prlimit(1)` name, `RLIMIT_*` number and unit.
    public struct Resource: Sendable {
        /// The `prlimit(1)` name (`nofile`).
        public let name: String
        /// The `RLIMIT_*` number.
        public let resource: Int32
        /// The unit of its values.
        public let unit: Unit
        /// Where it lives in ``ResourceLimits``.
        public let keyPath: WritableKeyPath<ResourceLimits, Limit?> & Sendable
    }

    /// Every resource, in `prlimit(1)`'s order. The `RLIMIT_*` numbers are the
    /// generic Linux ones (identical on x86_64 and arm64).
    public static let resources: [Resource] = [
        Resource(name: "as", resource: 9, unit: .bytes, keyPath: \.addressSpace),
        Resource(name: "core", resource: 4, unit: .bytes, keyPath: \.coreFileSize),
        Resource(name: "cpu", resource: 0, unit: .seconds, keyPath: \.cpuTime),
        Resource(name: "data", resource: 2, unit: .bytes, keyPath: \.dataSize),
        Resource(name: "fsize", resource: 1, unit: .bytes, keyPath: \.fileSize),
        Resource(name: "locks", resource: 10, unit: .count, keyPath: \.fileLocks),
        Resource(name: "memlock", resource: 8, unit: .bytes, keyPath: \.lockedMemory),
        Resource(name: "msgqueue", resource: 12, unit: .bytes, keyPath: \.messageQueueSize),
        Resource(name: "nice", resource: 13, unit: .count, keyPath: \.niceCeiling),
        Resource(name: "nofile", resource: 7, unit: .count, keyPath: \.openFiles),
        Resource(name: "nproc", resource: 6, unit: .count, keyPath: \.processes),
        Resource(name: "rss", resource: 5, unit: .bytes, keyPath: \.residentSetSize),
        Resource(name: "rtprio", resource: 14, unit: .count, keyPath: \.realtimePriority),
        Resource(name: "rttime", resource: 15, unit: .microseconds, keyPath: \.realtimeCPUTime),
        Resource(name: "sigpending", resource: 11, unit: .count, keyPath: \.pendingSignals),
        Resource(name: "stack", resource: 3, unit: .bytes, keyPath: \.stackSize),
    ]

    /// The current limits of this process for `resource` (`getrlimit`).
    public static func current(_ resource: Int32) -> (soft: LimitValue, hard: LimitValue) {
        var value = rlimit()
        getrlimit(__rlimit_resource_t(UInt32(resource)), &value)
        return (LimitValue(raw: UInt64(value.rlim_cur)), LimitValue(raw: UInt64(value.rlim_max)))
    }

    /// Resolves every set limit against the parent's current values and validates it.
    func resolved() throws(SpawnError) -> [(resource: Int32, soft: UInt64, hard: UInt64)] {
        var out: [(Int32, UInt64, UInt64)] = []
        for r in ResourceLimits.resources {
            guard let limit = self[keyPath: r.keyPath] else { continue }
            if limit.soft == nil && limit.hard == nil { continue }
            // Ask the kernel only for a side left as is: no getrlimit on the spawn
            // path when both sides are given.
            let current: (soft: LimitValue, hard: LimitValue)? =
                (limit.soft == nil || limit.hard == nil) ? ResourceLimits.current(r.resource) : nil
            let hard = (limit.hard ?? current!.hard).raw
            // "Leave the soft limit as is" cannot leave it above a lowered hard limit.
            let soft = limit.soft?.raw ?? min(current!.soft.raw, hard)
            if soft > hard {
                throw .invalid("limit \(r.name): soft limit \(LimitValue(raw: soft)) is above the hard limit \(LimitValue(raw: hard))")
            }
            out.append((r.resource, soft, hard))
        }
        return out
    }
}
