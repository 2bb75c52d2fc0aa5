#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error of AsyncSpawn: what failed, at which step, with which errno.
///
/// A non-zero exit or a signal is not an error: it is a ``Termination``.
public struct SpawnError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The configuration was rejected before any child existed.
        case invalidConfiguration
        /// The executable was not found in the child's `PATH` (step `resolve`).
        case executableNotFound
        /// The parent could not create the child (pipes, descriptors, clone).
        case spawnFailed
        /// A setup step in the child, or `execve`, failed. ``step`` names it.
        case childSetupFailed
        /// Another part of the process reaped the child first (`waitpid(-1)`),
        /// so its exit status is lost. The child is gone.
        case statusLost
        /// Writing to the child's stdin failed: it closed its end.
        case brokenPipe
        /// A line longer than the line view's limit.
        case lineTooLong
        /// An I/O error on a pipe.
        case io
        /// A seccomp filter could not be built.
        case seccomp
    }

    /// The kind of failure.
    public var code: Code
    /// The setup step that failed: `exec`, `chdir`, `setrlimit`, `setuid`, `setgid`,
    /// `setgroups`, `capabilities`, `setsid`, `setpgid`, `seccomp`, `dup2`, `resolve`,
    /// `clone`, ... (`exec` with `ETIMEDOUT`: the child did not reach its exec
    /// within ``Configuration/preExecDeadline``).
    public var step: String?
    /// The errno of the failure, when there is one.
    public var errno: Int32?
    /// A human-readable explanation that names the culprit.
    public var message: String

    /// An error value.
    public init(code: Code, step: String? = nil, errno: Int32? = nil, message: String) {
        self.code = code
        self.step = step
        self.errno = errno
        self.message = message
    }

    /// `strerror` for an errno, e.g. "No such file or directory".
    public static func describe(errno: Int32) -> String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }

    static func system(_ step: String, _ errno: Int32, code: Code = .spawnFailed) -> SpawnError {
        SpawnError(code: code, step: step, errno: errno,
                   message: "\(step): \(describe(errno: errno)) (errno \(errno))")
    }

    static func invalid(_ message: String) -> SpawnError {
        SpawnError(code: .invalidConfiguration, message: message)
    }

    /// The ``message``.
    public var description: String { message }
}
