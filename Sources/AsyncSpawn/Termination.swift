/// How a child process ended, as the kernel reported it.
public enum Termination: Sendable, Hashable, CustomStringConvertible {
    /// The child called `exit` with this code (0...255).
    case exited(Int32)
    /// A signal ended the child.
    case signaled(Signal)

    /// True when the child exited with code 0.
    public var isSuccess: Bool { self == .exited(0) }

    /// `exited(0)`, `signaled(SIGKILL)`.
    public var description: String {
        switch self {
        case .exited(let code): "exited(\(code))"
        case .signaled(let signal): "signaled(\(signal))"
        }
    }
}

/// Why a child ended, the most specific explanation AsyncSpawn can give.
///
/// - ``timedOut``: the configured timeout expired and the teardown ended the child
///   (whatever its termination was).
/// - ``outputLimit``: a stream passed the output limit (the child's group is then torn down).
/// - ``cpuLimit``: killed by `SIGXCPU`, or by `SIGKILL` with CPU time at or past the
///   CPU limit, i.e. at least half of the hard limit (rusage is tick-sampled and
///   reads low on a loaded machine; the kernel sends that SIGKILL at the hard limit).
/// - ``fileSizeLimit``: killed by `SIGXFSZ`.
/// - ``seccompViolation``: killed by `SIGSYS` while a seccomp filter was loaded.
/// - ``cancelled``: the task was cancelled before the child was seen to end, and
///   the teardown was started (a child that exited at that very moment keeps its
///   ``Termination/exited(_:)`` termination).
public enum Outcome: String, Sendable, Hashable, CaseIterable {
    /// The child exited by itself (see ``Termination/exited(_:)``).
    case exited
    /// A signal ended the child, and none of the more specific outcomes applies.
    case signaled
    /// The timeout expired and the teardown ended the child.
    case timedOut = "timed_out"
    /// The CPU-time limit ended the child.
    case cpuLimit = "cpu_limit"
    /// The file-size limit ended the child.
    case fileSizeLimit = "file_size_limit"
    /// A stream passed the output limit and the teardown ended the child.
    case outputLimit = "output_limit"
    /// The seccomp filter killed the child (SIGSYS).
    case seccompViolation = "seccomp_violation"
    /// The task was cancelled before the child was seen to end; the teardown was started.
    case cancelled
}

/// Resources the child used, from the kernel's rusage of the reaped child
/// (`waitid(2)`), and the wall time measured by the parent from spawn to reap.
public struct ResourceUsage: Sendable, Hashable {
    /// From just before the child was created to its reaping.
    public var wallTime: Duration
    /// CPU time spent in user mode.
    public var userTime: Duration
    /// CPU time spent in the kernel on the child's behalf.
    public var systemTime: Duration
    /// Peak resident set size in KiB, as the kernel's rusage of the child says
    /// (`ru_maxrss`). The child is created sharing this process's memory
    /// (`CLONE_VM`, like `posix_spawn`), and the kernel starts its peak at this
    /// process's resident set at the child's `execve`: a value up to this
    /// process's own peak means "at most that much", and it reveals this
    /// process's memory use. Do not show it to an untrusted party as the child's.
    public var maxResidentSetKiB: Int

    /// A usage value.
    public init(wallTime: Duration, userTime: Duration, systemTime: Duration, maxResidentSetKiB: Int) {
        self.wallTime = wallTime
        self.userTime = userTime
        self.systemTime = systemTime
        self.maxResidentSetKiB = maxResidentSetKiB
    }
}

/// What a finished child left: its termination, the classified outcome and its usage.
public struct ProcessReport: Sendable, Hashable {
    /// The child's process id (already reaped: do not signal it).
    public var processID: Int32
    /// How the child ended.
    public var termination: Termination
    /// Why it ended.
    public var outcome: Outcome
    /// What it used.
    public var usage: ResourceUsage
}

/// The result of ``run(_:input:)``: the report plus both collected streams.
public struct RunResult: Sendable, Hashable {
    /// Termination, outcome and usage.
    public var report: ProcessReport
    /// The child's stdout, up to the output limit.
    public var standardOutput: [UInt8]
    /// The child's stderr, up to the output limit.
    public var standardError: [UInt8]
    /// True when stdout went past the output limit and was cut.
    public var standardOutputTruncated: Bool
    /// True when stderr went past the output limit and was cut.
    public var standardErrorTruncated: Bool

    /// The report's termination.
    public var termination: Termination { report.termination }
    /// The report's outcome.
    public var outcome: Outcome { report.outcome }
    /// The report's usage.
    public var usage: ResourceUsage { report.usage }
    /// The child's pid (already reaped).
    public var processID: Int32 { report.processID }

    /// Stdout decoded as UTF-8 (invalid sequences replaced).
    public var standardOutputString: String { String(decoding: standardOutput, as: UTF8.self) }
    /// Stderr decoded as UTF-8 (invalid sequences replaced).
    public var standardErrorString: String { String(decoding: standardError, as: UTF8.self) }
}
