import CSpawn

#if canImport(Glibc)
import Glibc
#endif

/// Everything about how to start and supervise one child process.
///
/// A value type: build it once, tweak copies, share it between tasks.
///
/// ```swift
/// var config = Configuration(executable: "python3", arguments: ["-c", "print(1)"])
/// config.limits.cpuTime = .seconds(.seconds(2))
/// config.timeout = .seconds(5)
/// ```
public struct Configuration: Sendable {
    /// The program: a path when it contains `/`, otherwise looked up in the `PATH`
    /// of the child's environment, in the parent, before the child is created
    /// (execvp's rules, without its `/bin/sh` fallback).
    public var executable: String
    /// The arguments after `argv[0]`.
    public var arguments: [String]
    /// `argv[0]`; nil: `executable` as given.
    public var argument0: String?
    /// The child's environment.
    public var environment: Environment
    /// The child's working directory (`chdir` in the child); nil: the parent's.
    public var workingDirectory: String?
    /// Resource limits applied in the child before exec.
    public var limits: ResourceLimits
    /// Where the child goes: a new session (default), a new group, or the parent's group.
    public var processGroup: ProcessGroup
    /// The ids to run the child as; nil: unchanged.
    public var credentials: Credentials?
    /// `PR_SET_PDEATHSIG` with `SIGKILL`: the child dies when this process dies.
    /// On by default. Children are created from a thread AsyncSpawn owns and
    /// never retires, so an idle Swift pool thread exiting does not kill them.
    public var dieWithParent: Bool
    /// `prctl(PR_SET_NO_NEW_PRIVS)` in the child: setuid binaries and file
    /// capabilities no longer grant privileges. Forced on with a seccomp filter.
    public var noNewPrivileges: Bool
    /// The child's stdin. Default: `/dev/null`.
    public var standardInput: InputSource
    /// The child's stdout. Default: a pipe.
    public var standardOutput: OutputDestination
    /// The child's stderr. Default: a pipe.
    public var standardError: OutputDestination
    /// More descriptors for the child: each mapping's `source` (a descriptor of this
    /// process, which stays owned by the caller) becomes `target` in the child.
    public var extraFileDescriptors: [FileDescriptorMapping]
    /// A cap in bytes on each of stdout and stderr (when they are pipes). Past it
    /// the child's group is torn down and the outcome is ``Outcome/outputLimit``.
    /// A stream of exactly this many bytes is not past it. nil: no cap.
    public var outputLimit: Int?
    /// A wall-clock limit from spawn; at expiry the ``teardown`` runs and the
    /// outcome is ``Outcome/timedOut``. nil: none. Any value is accepted but a
    /// negative one: 2^32 seconds (about 136 years) or more is the same as nil.
    public var timeout: Duration?
    /// How the child is ended on timeout, cancellation, output limit or
    /// ``ChildProcess/terminate()``: first signal, grace, then `SIGKILL`.
    public var teardown: Teardown
    /// When the child exits, tear down whatever it left running in its process
    /// group (with ``teardown``). On by default; ignored with `.inherit`.
    public var tearDownGroupOnExit: Bool
    /// How long the streams may stay open after the child and its group are gone
    /// (a process that escaped the group may still hold a pipe). Then they end at
    /// their next read that would wait: what is already in the pipe (up to 1 MiB)
    /// is still delivered, however late the consumer reads it. 2^32 seconds or
    /// more: the streams wait for their writers however long they take.
    public var drainTimeout: Duration
    /// The longest the child may take from the start of the spawn to its exec,
    /// when no ``timeout`` comes first. A child stopped or stuck before its exec
    /// (another process of the uid it dropped to can SIGSTOP it) is killed then,
    /// and the spawn fails with ``SpawnError/Code/childSetupFailed``, step
    /// `exec`, errno `ETIMEDOUT`. With a shorter ``timeout``, the timeout ends it
    /// instead (outcome ``Outcome/timedOut``, `SIGKILL`). Default 10 s; 2^32
    /// seconds or more: no deadline (the child holds one spawning thread until
    /// it execs).
    public var preExecDeadline: Duration
    /// Tests only: the child stops itself (SIGSTOP) right before its exec, as an
    /// attacker of its uid would, so that the pre-exec watchdog can be tested.
    var testStopBeforeExec = false
    /// A system-call filter, compiled in the parent (cached) and loaded in the
    /// child last before exec. Implies ``noNewPrivileges``.
    public var seccomp: SeccompFilter?
    /// A ready BPF program to load instead of (or after) ``seccomp``; for filters
    /// built elsewhere. Implies ``noNewPrivileges``.
    public var seccompProgram: SeccompProgram?
    /// The longest line the line view accepts before throwing ``SpawnError/Code/lineTooLong``.
    public var maximumLineLength: Int

    /// A configuration with the defaults: new session, die-with-parent, stdin
    /// from `/dev/null`, stdout and stderr to pipes, no limits, no timeout.
    public init(executable: String, arguments: [String] = []) {
        self.executable = executable
        self.arguments = arguments
        self.argument0 = nil
        self.environment = .inherit
        self.workingDirectory = nil
        self.limits = ResourceLimits()
        self.processGroup = .newSession
        self.credentials = nil
        self.dieWithParent = true
        self.noNewPrivileges = false
        self.standardInput = .null
        self.standardOutput = .pipe
        self.standardError = .pipe
        self.extraFileDescriptors = []
        self.outputLimit = nil
        self.timeout = nil
        self.teardown = Teardown()
        self.tearDownGroupOnExit = true
        self.drainTimeout = .milliseconds(250)
        self.preExecDeadline = .seconds(10)
        self.seccomp = nil
        self.seccompProgram = nil
        self.maximumLineLength = 1 << 20
    }
}

/// The child's environment: a base and edits applied to it in order.
public struct Environment: Sendable, Hashable {
    enum Base: Sendable, Hashable {
        case inherit
        case custom([String: String])
    }
    var base: Base
    /// Edits: a value sets the variable, nil removes it.
    var edits: [(String, String?)] = []

    /// This process's environment as it is at spawn time. Unchanged, it is passed
    /// to the child as `environ` itself, as `posix_spawn` does: like there, a
    /// `setenv`/`unsetenv` on another thread during a spawn is a data race.
    public static let inherit = Environment(base: .inherit)
    /// No variables at all.
    public static let empty = Environment(base: .custom([:]))
    /// Exactly these variables.
    public static func custom(_ variables: [String: String]) -> Environment {
        Environment(base: .custom(variables))
    }

    /// Returns a copy with `name` set to `value`.
    public func setting(_ name: String, to value: String) -> Environment {
        var copy = self
        copy.edits.append((name, value))
        return copy
    }

    /// Returns a copy without `name`.
    public func removing(_ name: String) -> Environment {
        var copy = self
        copy.edits.append((name, nil))
        return copy
    }

    /// Sets `name` to `value` (nil removes it).
    public mutating func set(_ name: String, _ value: String?) {
        edits.append((name, value))
    }

    /// The variables the child will get, in order, as `NAME=VALUE` strings.
    public func resolved() -> [(String, String)] {
        var order: [String] = []
        var values: [String: String] = [:]
        switch base {
        case .inherit:
            for (k, v) in Environment.current() where values[k] == nil {
                order.append(k)
                values[k] = v
            }
        case .custom(let vars):
            for k in vars.keys.sorted() {
                order.append(k)
                values[k] = vars[k]
            }
        }
        for (k, v) in edits {
            if let v {
                if values[k] == nil { order.append(k) }
                values[k] = v
            } else {
                values[k] = nil
            }
        }
        return order.compactMap { k in values[k].map { (k, $0) } }
    }

    static func current() -> [(String, String)] {
        var out: [(String, String)] = []
        guard var p = cspawn_environ() else { return [] }
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                out.append((String(s[..<eq]), String(s[s.index(after: eq)...])))
            }
            p += 1
        }
        return out
    }

    /// Same base and same edits in the same order.
    public static func == (a: Environment, b: Environment) -> Bool {
        a.base == b.base && a.edits.count == b.edits.count
            && zip(a.edits, b.edits).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// Hashes the base and the edits.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(base)
        for (k, v) in edits {
            hasher.combine(k)
            hasher.combine(v)
        }
    }
}

/// Where the child goes in the process-group hierarchy.
public enum ProcessGroup: Sendable, Hashable {
    /// `setsid()` in the child: a new session and process group, no controlling
    /// terminal. Teardown signals the whole group. The default.
    case newSession
    /// `setpgid(0, 0)` in the child: a new group in the parent's session.
    case newGroup
    /// The parent's group: teardown then signals the child alone.
    case inherit
}

/// User and group ids for the child (`setgroups`, `setresgid`, `setresuid`).
public struct Credentials: Sendable, Hashable {
    /// The real, effective and saved user id.
    public var userID: UInt32?
    /// The real, effective and saved group id. nil with a ``userID``: the
    /// user's primary group from the passwd database (looked up in the parent
    /// before the spawn), or the same number as the user id when it has no
    /// entry; so a child never keeps the parent's group (root's gid 0) by
    /// accident. nil without a ``userID``: unchanged.
    public var groupID: UInt32?
    /// Supplementary groups; nil: empty when `userID` or `groupID` is set
    /// (dropping privileges drops the parent's groups too), else unchanged.
    public var supplementaryGroups: [UInt32]?

    /// Ids to switch to. A nil `groupID` with a `userID` is the user's primary
    /// group (see ``groupID``); other nil values leave the id unchanged.
    public init(userID: UInt32? = nil, groupID: UInt32? = nil, supplementaryGroups: [UInt32]? = nil) {
        self.userID = userID
        self.groupID = groupID
        self.supplementaryGroups = supplementaryGroups
    }

    /// The primary group of `uid` in the passwd database (`getpwuid_r`), or
    /// `uid` itself when it has no entry.
    static func primaryGroup(of uid: UInt32) -> UInt32 {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 1024)
        while true {
            let rc = buffer.withUnsafeMutableBufferPointer {
                getpwuid_r(uid, &entry, $0.baseAddress!, $0.count, &found)
            }
            if rc == ERANGE && buffer.count < 1 << 20 {
                buffer = [CChar](repeating: 0, count: buffer.count * 4)
                continue
            }
            return rc == 0 && found != nil ? entry.pw_gid : uid
        }
    }
}

/// What the child reads on stdin.
public enum InputSource: Sendable, Hashable {
    /// A pipe written through ``ChildProcess/standardInput``.
    case pipe
    /// `/dev/null`.
    case null
    /// This process's own stdin.
    case inherit
    /// A descriptor of this process (it stays owned by the caller).
    case fileDescriptor(Int32)
}

/// Where the child's stdout or stderr goes.
public enum OutputDestination: Sendable, Hashable {
    /// A pipe read through ``ChildProcess/standardOutput`` / ``ChildProcess/standardError``
    /// (or collected by ``run(_:input:)``).
    case pipe
    /// `/dev/null`.
    case null
    /// This process's own stdout / stderr.
    case inherit
    /// A descriptor of this process (it stays owned by the caller).
    case fileDescriptor(Int32)
}

/// A descriptor of this process that the child gets under another number.
public struct FileDescriptorMapping: Sendable, Hashable {
    /// The descriptor in this process; it stays owned by the caller.
    public var source: Int32
    /// The number it gets in the child (3 or more).
    public var target: Int32

    /// `source` here becomes `target` in the child.
    public init(source: Int32, target: Int32) {
        self.source = source
        self.target = target
    }
}

/// How to end a child: `signal` to the process group (or the child alone with
/// ``ProcessGroup/inherit``), then `SIGKILL` after `grace` if it is still there.
public struct Teardown: Sendable, Hashable {
    /// The first signal. Default `SIGTERM`.
    public var signal: Signal
    /// The wait between the first signal and `SIGKILL`. Default 2 s. 2^32
    /// seconds (about 136 years) or more: `SIGKILL` is never sent.
    public var grace: Duration

    /// A teardown; the defaults are SIGTERM and 2 s.
    public init(signal: Signal = .terminate, grace: Duration = .seconds(2)) {
        self.signal = signal
        self.grace = grace
    }

    /// `SIGKILL` at once.
    public static let immediate = Teardown(signal: .kill, grace: .zero)
}

/// A compiled seccomp-BPF program (an array of `struct sock_filter`, 8 bytes each)
/// that the child loads with `seccomp(SECCOMP_SET_MODE_FILTER)` just before exec.
public struct SeccompProgram: Sendable, Hashable {
    /// The raw BPF instructions, as `seccomp_export_bpf` writes them.
    public var bytes: [UInt8]

    /// Wraps raw BPF bytes; their count must be a multiple of 8.
    public init(bytes: [UInt8]) { self.bytes = bytes }
}
