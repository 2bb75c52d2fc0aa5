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

    /// Parses a signal name (`TERM`, `SIGTERM`, `term`, `RTMIN+2`, `RTMAX-3`) or
    /// number (`15`). Returns nil for anything else, whatever its size: a number
    /// or offset outside 1...64 (`RTMIN+2147483647`, `RTMAX--1`, `-15`, twenty
    /// digits) is not a signal, and never traps.
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces()
        if let number = Signal.smallNumber(trimmed) {
            guard number >= 1 && number <= 64 else { return nil }
            self.init(rawValue: Int32(number))
            return
        }
        var name = trimmed.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let match = Signal.names.first(where: { $0.0 == name }) {
            self.init(rawValue: match.1)
            return
        }
        let rtmin = 34, rtmax = 64
        if name == "RTMIN" { self.init(rawValue: Int32(rtmin)); return }
        if name == "RTMAX" { self.init(rawValue: Int32(rtmax)); return }
        if name.hasPrefix("RTMIN+"), let n = Signal.smallNumber(name.dropFirst(6)), rtmin + n <= rtmax {
            self.init(rawValue: Int32(rtmin + n)); return
        }
        if name.hasPrefix("RTMAX-"), let n = Signal.smallNumber(name.dropFirst(6)), rtmax - n >= rtmin {
            self.init(rawValue: Int32(rtmax - n)); return
        }
        return nil
    }

    /// The value of an unsigned decimal (digits only: no sign, no space), capped
    /// at 9999 so that no arithmetic on it can overflow; nil when `text` is not
    /// such a decimal.
    private static func smallNumber<S: StringProtocol>(_ text: S) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        let significant = text.utf8.drop { $0 == UInt8(ascii: "0") }
        guard significant.count <= 4 else { return 9999 }
        return significant.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
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
