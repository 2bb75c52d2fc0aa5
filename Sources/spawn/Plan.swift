import AsyncSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the child's stdin comes from.
enum StdinSource {
    case null
    case file(Int32)  // an open descriptor: a FILE, or 0 for `-`
}

/// The validated options: the library configuration plus what the CLI does itself.
struct Plan {
    var configuration: Configuration
    var json: Bool
    var stdin: StdinSource

    init(options o: SpawnOptions, executable: String, arguments: [String]) throws {
        var c = Configuration(executable: executable, arguments: arguments)
        for r in ResourceLimits.resources {
            guard let text = o.limitTexts[r.name] ?? nil else { continue }
            c.limits[keyPath: r.keyPath] = try ValueParsing.limit(text, option: r.name, bytes: r.unit == .bytes)
        }
        if let t = o.timeout {
            let d = try ValueParsing.duration(t, option: "timeout")
            c.timeout = d == .zero ? nil : d  // timeout(1): 0 disables
        }
        var teardown = Teardown()
        if let s = o.signal { teardown.signal = try ValueParsing.signal(s, option: "signal") }
        if let k = o.killAfter { teardown.grace = try ValueParsing.duration(k, option: "kill-after") }
        c.teardown = teardown
        switch o.group {
        case nil, "session": c.processGroup = .newSession
        case "group": c.processGroup = .newGroup
        case "inherit": c.processGroup = .inherit
        case let other?:
            throw UsageError(message: "invalid value '\(other)' for --group: expected session, group or inherit")
        }
        if let cwd = o.cwd {
            if cwd.isEmpty { throw UsageError(message: "invalid value '' for --cwd: expected a directory") }
            c.workingDirectory = cwd
        }
        var env: Environment = o.clearEnv ? .empty : .inherit
        for name in o.unset {
            if name.isEmpty || name.contains("=") {
                throw UsageError(message: "invalid value '\(name)' for --unset: expected a variable name")
            }
            env.set(name, nil)
        }
        for entry in o.env {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw UsageError(message: "invalid value '\(entry)' for --env: expected NAME=VALUE")
            }
            env.set(String(entry[..<eq]), String(entry[entry.index(after: eq)...]))
        }
        c.environment = env
        if o.uid != nil || o.gid != nil {
            c.credentials = Credentials(
                userID: try o.uid.map { try ValueParsing.id($0, option: "uid") },
                groupID: try o.gid.map { try ValueParsing.id($0, option: "gid") },
                supplementaryGroups: [])
        }
        c.dieWithParent = !o.noDieWithParent
        c.noNewPrivileges = o.noNewPrivs
        c.standardOutput = .pipe
        c.standardError = .pipe
        if let limit = o.outputLimit {
            guard let n = ValueParsing.size(limit, allowSuffix: true), n <= UInt64(Int.max) else {
                throw UsageError(message: "invalid value '\(limit)' for --output-limit: expected a number of bytes (K, M, G, T suffixes)")
            }
            c.outputLimit = Int(n)
        } else if o.json {
            c.outputLimit = 16 << 20
        }

        // Seccomp: presets and denied calls, with the chosen action.
        let action: SeccompAction
        switch o.seccompAction {
        case nil, "errno": action = .errno(EPERM)
        case "kill": action = .killProcess
        case let other?:
            throw UsageError(message: "invalid value '\(other)' for --seccomp-action: expected errno or kill")
        }
        var filter: SeccompFilter? = nil
        for name in o.seccomp {
            guard let preset = SeccompPreset(name: name) else {
                throw UsageError(message: "unknown seccomp profile '\(name)' (known: \(SeccompPreset.allCases.map(\.name).joined(separator: ", ")))")
            }
            filter = (filter ?? SeccompFilter()).merging(.preset(preset, deniedWith: action))
        }
        for list in o.deny {
            let names = list.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters() }
            for name in names {
                guard !name.isEmpty, SeccompFilter.isKnownSyscall(name) else {
                    throw UsageError(message: "unknown system call '\(name)' in --deny")
                }
            }
            filter = (filter ?? SeccompFilter()).merging(.deny(names, with: action))
        }
        if o.seccompAction != nil && filter == nil {
            throw UsageError(message: "--seccomp-action needs --seccomp or --deny")
        }
        c.seccomp = filter

        json = o.json
        switch o.stdin {
        case nil:
            stdin = .null
            c.standardInput = .null
        case "-":
            stdin = .file(0)
            c.standardInput = .pipe
        case let path?:
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                let e = errno
                throw UsageError(message: "--stdin: cannot open '\(path)': \(String(cString: strerror(e))) (errno \(e))")
            }
            var st = stat()
            if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                close(fd)
                throw UsageError(message: "--stdin: '\(path)' is a directory")
            }
            stdin = .file(fd)
            c.standardInput = .pipe
        }
        configuration = c
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
