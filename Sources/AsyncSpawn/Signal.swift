#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX signal, by number, with its conventional name.
public struct Signal: Sendable, Hashable, CustomStringConvertible {
    /// The signal number, as the kernel numbers it on this platform.
    public var rawValue: Int32

    /// A signal by number. Any number in 1...64 is accepted.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `SIGHUP`.
    public static let hangup = Signal(rawValue: SIGHUP)
    /// `SIGINT`.
    public static let interrupt = Signal(rawValue: SIGINT)
    /// `SIGQUIT`.
    public static let quit = Signal(rawValue: SIGQUIT)
    /// `SIGABRT`.
    public static let abort = Signal(rawValue: SIGABRT)
    /// SIGKILL: cannot be caught or ignored.
    public static let kill = Signal(rawValue: SIGKILL)
    /// SIGTERM: the default first teardown signal.
    public static let terminate = Signal(rawValue: SIGTERM)
    /// `SIGUSR1`.
    public static let user1 = Signal(rawValue: SIGUSR1)
    /// `SIGUSR2`.
    public static let user2 = Signal(rawValue: SIGUSR2)
    /// `SIGPIPE`.
    public static let pipe = Signal(rawValue: SIGPIPE)
    /// `SIGALRM`.
    public static let alarm = Signal(rawValue: SIGALRM)
    /// `SIGCHLD`.
    public static let child = Signal(rawValue: SIGCHLD)
    /// `SIGCONT`.
    public static let `continue` = Signal(rawValue: SIGCONT)
    /// `SIGSTOP`.
    public static let stop = Signal(rawValue: SIGSTOP)
    /// SIGXCPU: sent at the soft RLIMIT_CPU.
    public static let cpuLimitExceeded = Signal(rawValue: SIGXCPU)
    /// SIGXFSZ: sent past RLIMIT_FSIZE.
    public static let fileSizeLimitExceeded = Signal(rawValue: SIGXFSZ)
    /// SIGSYS: also how a seccomp kill ends a process.
    public static let badSystemCall = Signal(rawValue: SIGSYS)
    /// `SIGSEGV`.
    public static let segmentationFault = Signal(rawValue: SIGSEGV)

    static let names: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP),
        ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO),
        ("POLL", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// Parses a signal name (`TERM`, `SIGTERM`, `term`, `RTMIN+2`) or number (`15`).
    /// Returns nil for anything else.
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces()
        if let number = Int32(trimmed) {
            guard number >= 1 && number <= 64 else { return nil }
            self.init(rawValue: number)
            return
        }
        var name = trimmed.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let match = Signal.names.first(where: { $0.0 == name }) {
            self.init(rawValue: match.1)
            return
        }
        let rtmin = Int32(34), rtmax = Int32(64)
        if name == "RTMIN" { self.init(rawValue: rtmin); return }
        if name == "RTMAX" { self.init(rawValue: rtmax); return }
        if name.hasPrefix("RTMIN+"), let n = Int32(name.dropFirst(6)), rtmin + n <= rtmax, n >= 0 {
            self.init(rawValue: rtmin + n); return
        }
        if name.hasPrefix("RTMAX-"), let n = Int32(name.dropFirst(6)), rtmax - n >= rtmin, n >= 0 {
            self.init(rawValue: rtmax - n); return
        }
        return nil
    }

    /// The conventional name without the `SIG` prefix, e.g. `TERM`, or the number.
    public var name: String {
        if let known = Signal.names.first(where: { $0.1 == rawValue }) { return known.0 }
        switch rawValue {
        case 34: return "RTMIN"
        case 35...49: return "RTMIN+\(rawValue - 34)"
        case 50...63: return "RTMAX-\(64 - rawValue)"
        case 64: return "RTMAX"
        default: return "\(rawValue)"
        }
    }

    /// `SIGTERM`, `SIGKILL`, ...
    public var description: String { "SIG\(name)" }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return String(s)
    }
}
