import ArgumentParser
import AsyncSpawn
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The options of `spawn`, parsed by swift-argument-parser. The command
/// (EXECUTABLE and its arguments) is split off before parsing, so everything after
/// EXECUTABLE belongs to the child even when it looks like an option.
struct SpawnOptions: ParsableArguments {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Run one command under resource limits, in its own session, with a timeout, output caps, an optional seccomp filter and a JSON report.",
        usage: """
            spawn [OPTIONS] [--] EXECUTABLE [ARGUMENT ...]
            spawn limits
            """,
        discussion: """
            Limits take N (soft = hard), SOFT:HARD, SOFT: or :HARD; either side may be 'unlimited'. \
            Byte-sized limits (as, core, data, fsize, memlock, msgqueue, rss, stack) accept K, M, G, T (powers of 1024). \
            --cpu is in seconds, --rttime in microseconds. DURATION is a decimal number with an optional unit ms, s, m, h. \
            Exit status: the child's exit code; 124 on timeout; 128+N when signal N ended it; \
            125 for a usage error or a failure of spawn itself; 126 when the executable could not be run; 127 when it was not found.
            """)

    @Option(name: .customLong("as"), help: "RLIMIT_AS: address space in bytes.") var addressSpace: String?
    @Option(name: .customLong("core"), help: "RLIMIT_CORE: core file size in bytes.") var core: String?
    @Option(name: .customLong("cpu"), help: "RLIMIT_CPU: CPU time in seconds.") var cpu: String?
    @Option(name: .customLong("data"), help: "RLIMIT_DATA: data segment in bytes.") var data: String?
    @Option(name: .customLong("fsize"), help: "RLIMIT_FSIZE: file size in bytes.") var fsize: String?
    @Option(name: .customLong("locks"), help: "RLIMIT_LOCKS: number of file locks.") var locks: String?
    @Option(name: .customLong("memlock"), help: "RLIMIT_MEMLOCK: locked memory in bytes.") var memlock: String?
    @Option(name: .customLong("msgqueue"), help: "RLIMIT_MSGQUEUE: POSIX message queue bytes.") var msgqueue: String?
    @Option(name: .customLong("nice"), help: "RLIMIT_NICE: nice ceiling (20 - nice).") var nice: String?
    @Option(name: .customLong("nofile"), help: "RLIMIT_NOFILE: open files.") var nofile: String?
    @Option(name: .customLong("nproc"), help: "RLIMIT_NPROC: processes of the user (not enforced for root).") var nproc: String?
    @Option(name: .customLong("rss"), help: "RLIMIT_RSS: resident set in bytes.") var rss: String?
    @Option(name: .customLong("rtprio"), help: "RLIMIT_RTPRIO: real-time priority ceiling.") var rtprio: String?
    @Option(name: .customLong("rttime"), help: "RLIMIT_RTTIME: real-time CPU microseconds.") var rttime: String?
    @Option(name: .customLong("sigpending"), help: "RLIMIT_SIGPENDING: queued signals.") var sigpending: String?
    @Option(name: .customLong("stack"), help: "RLIMIT_STACK: stack in bytes.") var stack: String?

    @Option(name: .customLong("timeout"), help: ArgumentHelp("Wall-clock limit; then --signal to the group, SIGKILL after --kill-after.", valueName: "DURATION"))
    var timeout: String?
    @Option(name: .customLong("signal"), help: ArgumentHelp("First teardown signal, name or number (default TERM).", valueName: "SIG"))
    var signal: String?
    @Option(name: .customLong("kill-after"), help: ArgumentHelp("Grace between the first signal and SIGKILL (default 2s).", valueName: "DURATION"))
    var killAfter: String?
    @Option(name: .customLong("group"), help: ArgumentHelp("session (setsid), group (setpgid) or inherit (default session).", valueName: "MODE"))
    var group: String?
    @Option(name: .customLong("cwd"), help: ArgumentHelp("Working directory of the child.", valueName: "DIR"))
    var cwd: String?
    @Option(name: .customLong("env"), help: ArgumentHelp("Set a variable in the child's environment (repeatable).", valueName: "NAME=VALUE"))
    var env: [String] = []
    @Option(name: .customLong("unset"), help: ArgumentHelp("Remove a variable from the child's environment (repeatable).", valueName: "NAME"))
    var unset: [String] = []
    @Flag(name: .customLong("clear-env"), help: "Start the child's environment empty.")
    var clearEnv = false
    @Option(name: .customLong("uid"), help: ArgumentHelp("Run the child as this user id (drops supplementary groups).", valueName: "N"))
    var uid: String?
    @Option(name: .customLong("gid"), help: ArgumentHelp("Run the child as this group id (drops supplementary groups).", valueName: "N"))
    var gid: String?
    @Flag(name: .customLong("no-die-with-parent"), help: "Do not SIGKILL the child when spawn dies.")
    var noDieWithParent = false
    @Flag(name: .customLong("no-new-privs"), help: "Set PR_SET_NO_NEW_PRIVS in the child.")
    var noNewPrivs = false
    @Option(name: .customLong("stdin"), help: ArgumentHelp("Feed FILE to the child's stdin; '-' forwards spawn's stdin (default /dev/null).", valueName: "FILE"))
    var stdin: String?
    @Option(name: .customLong("output-limit"), help: ArgumentHelp("Cap for each of stdout and stderr (default 16M with --json).", valueName: "BYTES"))
    var outputLimit: String?
    @Option(name: .customLong("seccomp"), help: ArgumentHelp("A seccomp preset (repeatable): \(SeccompPreset.allCases.map(\.name).joined(separator: ", ")).", valueName: "PROFILE"))
    var seccomp: [String] = []
    @Option(name: .customLong("deny"), help: ArgumentHelp("System calls that fail with EPERM (repeatable, comma-separated).", valueName: "SYSCALL[,SYSCALL...]"))
    var deny: [String] = []
    @Option(name: .customLong("seccomp-action"), help: ArgumentHelp("What a denied call gets: errno (default) or kill.", valueName: "errno|kill"))
    var seccompAction: String?
    @Flag(name: .customLong("json"), help: "Collect both streams and print one JSON report.")
    var json = false

    /// Options that take a value: the splitter skips their value.
    static let valueOptions: Set<String> = [
        "--as", "--core", "--cpu", "--data", "--fsize", "--locks", "--memlock", "--msgqueue", "--nice",
        "--nofile", "--nproc", "--rss", "--rtprio", "--rttime", "--sigpending", "--stack",
        "--timeout", "--signal", "--kill-after", "--group", "--cwd", "--env", "--unset", "--uid", "--gid",
        "--stdin", "--output-limit", "--seccomp", "--deny", "--seccomp-action",
    ]

    /// Splits `spawn`'s arguments into options and the command: the command
    /// starts at the first argument that is not an option (or after `--`).
    static func split(_ arguments: [String]) -> (options: [String], command: [String]) {
        var options: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { return (options, Array(arguments[(i + 1)...])) }
            if a.hasPrefix("-") && a != "-" {
                if valueOptions.contains(a), i + 1 < arguments.count {
                    // Joined as --opt=value so that a value starting with '-' stays a
                    // value (and a malformed one is reported with its option).
                    options.append(a + "=" + arguments[i + 1])
                    i += 2
                } else {
                    options.append(a)
                    i += 1
                }
                continue
            }
            return (options, Array(arguments[i...]))
        }
        return (options, [])
    }

    var limitTexts: [String: String?] {
        ["as": addressSpace, "core": core, "cpu": cpu, "data": data, "fsize": fsize, "locks": locks,
         "memlock": memlock, "msgqueue": msgqueue, "nice": nice, "nofile": nofile, "nproc": nproc,
         "rss": rss, "rtprio": rtprio, "rttime": rttime, "sigpending": sigpending, "stack": stack]
    }
}

/// The process group of the running child, for the signal handlers.
let childGroup = Atomic<Int32>(0)
/// The child's pid (the group's leader), 0 before it exists.
let childPID = Atomic<Int32>(0)

@main
struct SpawnMain {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["limits"] {
            printLimits()
            exit(0)
        }
        let (optionArguments, command) = SpawnOptions.split(arguments)
        let options: SpawnOptions
        do {
            options = try SpawnOptions.parse(optionArguments)
        } catch {
            if SpawnOptions.exitCode(for: error) == .success {
                print(SpawnOptions.fullMessage(for: error))
                exit(0)
            }
            fail("\(SpawnOptions.message(for: error))\nUsage: spawn [OPTIONS] [--] EXECUTABLE [ARGUMENT ...] (see spawn --help)")
        }
        guard let executable = command.first else {
            fail("missing EXECUTABLE\nUsage: spawn [OPTIONS] [--] EXECUTABLE [ARGUMENT ...] (see spawn --help)")
        }
        let plan: Plan
        do {
            plan = try Plan(options: options, executable: executable, arguments: Array(command.dropFirst()))
        } catch {
            fail("\(error)")
        }
        let code = await Runner(plan: plan).run()
        exit(code)
    }

    static func fail(_ message: String) -> Never {
        writeAll(2, Array("spawn: \(message)\n".utf8))
        exit(125)
    }

    static func printLimits() {
        var out = ""
        for r in ResourceLimits.resources {
            let (soft, hard) = ResourceLimits.current(r.resource)
            out += "\(r.name) \(soft) \(hard)\n"
        }
        writeAll(1, Array(out.utf8))
    }
}

/// Writes all of `bytes` to `fd`; false when the reader went away.
@discardableResult
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }
}
