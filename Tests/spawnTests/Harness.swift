// Test harness for the `spawn` CLI: runs the real built binary as a child of
// this test process and captures its stdout, stderr and exit status.
//
// spawn is started through a tiny `sh` wrapper that reports spawn's exit status
// on a pipe (fd 3). The status therefore does not depend on waitpid() of this
// process: another test in the same bundle may run a thread that reaps every
// child with waitpid(-1), and that must not make these tests flaky or hang.
// Every run is bounded by a deadline (TestTime.hang unless a test says
// otherwise); past it the wrapper's whole process group is killed and the result
// says so. Every other wall-clock bound comes from TestTime too.

import Foundation
@_exported import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum CLI {
    /// The `spawn` executable next to the test bundle.
    static let spawnPath: String = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        precondition(n > 0, "readlink /proc/self/exe failed")
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("spawn").path
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
            dir = dir.deletingLastPathComponent()
        }
        preconditionFailure("no executable named spawn above \(exe)")
    }()

    /// A child that prints its resource limits as `NAME SOFT HARD` lines (see
    /// parseLimits): `spawn limits`, or, when this process (and so the spawn
    /// binary of the same build) runs under AddressSanitizer, the test probe's
    /// `report` (lines `rlimit.NAME SOFT HARD`) built with gcc: a sanitized
    /// child cannot reserve its shadow memory under --as or --data limits.
    static let limitsChild: [String] = isSanitized ? [UninstrumentedProbe.path, "report"] : [spawnPath, "limits"]

    /// The real Python interpreter (not a pyenv shim, which is a bash script
    /// that forks: that matters under `--seccomp no-new-processes`).
    static let python: String = {
        let r = CLI.runDirect(["/bin/sh", "-c", "python3 -c 'import sys; print(sys.executable)' 2>/dev/null"])
        let path = r.trimmingCharacters(in: .whitespacesAndNewlines)
        if !path.isEmpty, access(path, X_OK) == 0 { return path }
        return "/usr/bin/python3"
    }()

    /// Runs a helper command (not spawn) and returns its stdout; used for set-up only.
    static func runDirect(_ argv: [String]) -> String {
        let r = run(executable: argv[0], argv: argv)
        return r.stdoutString
    }

    enum Stdin {
        /// A socket held open, never written, until spawn has exited: a child that
        /// read spawn's own stdin would block on it.
        case heldOpen
        /// These bytes, then end of file.
        case data([UInt8])
        /// A file opened read-only.
        case file(String)
    }

    struct Result: CustomStringConvertible {
        /// spawn's exit status (128+N if spawn itself was killed by signal N), -1 if unknown.
        var status: Int32
        var stdout: [UInt8]
        var stderr: [UInt8]
        /// Seconds from start until spawn exited.
        var elapsed: Double
        /// Seconds from start until the first byte arrived on stdout, if any did.
        var firstStdoutAt: Double?
        /// spawn did not exit before the harness deadline (it was killed).
        var hung: Bool
        /// spawn exited but something else still held its stdout or stderr open.
        var outputHeldOpen: Bool
        /// The pid of the wrapper `sh` (also the process group id spawn runs in).
        var wrapperPID: pid_t

        var stdoutString: String { String(decoding: stdout, as: UTF8.self) }
        var stderrString: String { String(decoding: stderr, as: UTF8.self) }

        var description: String {
            "status=\(status) elapsed=\(String(format: "%.3f", elapsed))s hung=\(hung) heldOpen=\(outputHeldOpen)\n"
                + "stdout: \(stdoutString.prefix(2000))\nstderr: \(stderrString.prefix(2000))"
        }

        /// The JSON report printed on stdout (nil if stdout is not exactly one JSON object).
        var json: [String: Any]? {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(stdout), options: []) else { return nil }
            return obj as? [String: Any]
        }

        /// The JSON report decoded with strict types.
        func report(sourceLocation: SourceLocation = #_sourceLocation) throws -> Report {
            do {
                return try JSONDecoder().decode(Report.self, from: Data(stdout))
            } catch {
                Issue.record("stdout is not a valid JSON report: \(error)\n\(self)", sourceLocation: sourceLocation)
                throw error
            }
        }
    }

    /// Runs `spawn ARGS...` and waits (bounded by `deadline`, a hang detector) for
    /// it to exit. `onFirstStdout` runs (on this thread) when the first bytes
    /// arrive on stdout, so a test can answer output instead of timing it.
    static func spawn(
        _ arguments: [String],
        stdin: Stdin = .heldOpen,
        stdoutFile: String? = nil,
        stderrFile: String? = nil,
        environment: [String: String]? = nil,
        deadline: Duration = TestTime.hang,
        onFirstStdout: (() -> Void)? = nil
    ) -> Result {
        run(executable: spawnPath, argv: [spawnPath] + arguments, stdin: stdin, stdoutFile: stdoutFile,
            stderrFile: stderrFile, environment: environment, deadline: deadline, onFirstStdout: onFirstStdout)
    }

    static let baseEnvironment: [String: String] = {
        var env = ProcessInfo.processInfo.environment
        env["SPAWN_TEST_INHERITED"] = "inherited-value"
        if env["HOME"] == nil { env["HOME"] = "/root" }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return env
    }()

    static func run(
        executable: String,
        argv: [String],
        stdin: Stdin = .heldOpen,
        stdoutFile: String? = nil,
        stderrFile: String? = nil,
        environment: [String: String]? = nil,
        deadline: Duration = TestTime.hang,
        onFirstStdout: (() -> Void)? = nil
    ) -> Result {
        let start = now()
        // Pipes with high, close-on-exec descriptors (so dup2 onto 0..3 never hits the same number).
        let (outR, outW) = makePipe()
        let (errR, errW) = makePipe()
        let (statusR, statusW) = makePipe()
        var stdinKeep: Int32 = -1  // our end, for .heldOpen and .data
        var stdinChild: Int32 = -1
        switch stdin {
        case .heldOpen, .data:
            var sv: [Int32] = [0, 0]
            precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0)
            stdinKeep = highFD(sv[0])
            stdinChild = highFD(sv[1])
        case .file(let path):
            stdinChild = highFD(open(path, O_RDONLY | O_CLOEXEC))
            precondition(stdinChild >= 0, "cannot open \(path)")
        }
        var outFileFD: Int32 = -1
        if let stdoutFile {
            outFileFD = highFD(open(stdoutFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644))
            precondition(outFileFD >= 0)
        }
        var errFileFD: Int32 = -1
        if let stderrFile {
            errFileFD = highFD(open(stderrFile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644))
            precondition(errFileFD >= 0)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, stdinChild, 0)
        posix_spawn_file_actions_adddup2(&actions, outFileFD >= 0 ? outFileFD : outW, 1)
        posix_spawn_file_actions_adddup2(&actions, errFileFD >= 0 ? errFileFD : errW, 2)
        posix_spawn_file_actions_adddup2(&actions, statusW, 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        // sh reports the exit status of the command on fd 3, which the command itself does not get.
        let wrapperArgv = ["/bin/sh", "-c", "\"$@\" 3>&-; printf '%s' \"$?\" >&3", "sh"] + [executable] + argv.dropFirst()
        let env = (environment ?? baseEnvironment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStrings(wrapperArgv) { cargv in
            withCStrings(env) { cenv in
                posix_spawn(&pid, "/bin/sh", &actions, &attr, cargv, cenv)
            }
        }
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attr)
        close(outW); close(errW); close(statusW); close(stdinChild)
        if outFileFD >= 0 { close(outFileFD) }
        if errFileFD >= 0 { close(errFileFD) }
        precondition(rc == 0, "posix_spawn failed: \(rc)")

        var pending: [UInt8] = []
        if case .data(let bytes) = stdin {
            pending = bytes
            _ = fcntl(stdinKeep, F_SETFL, fcntl(stdinKeep, F_GETFL) | O_NONBLOCK)
            if pending.isEmpty { shutdown(stdinKeep, Int32(SHUT_WR)) }
        }

        var out: [UInt8] = [], err: [UInt8] = [], status: [UInt8] = []
        var outOpen = true, errOpen = true, statusOpen = true
        var firstStdoutAt: Double? = nil
        var exitedAt: Double? = nil
        var hung = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        let hardDeadline = start + deadline.inSeconds
        // After spawn has exited, how long its output may stay open before the
        // result says something else holds it.
        let closeGrace = TestTime.slack.inSeconds

        while outOpen || errOpen || statusOpen {
            let t = now()
            if statusOpen && t >= hardDeadline {
                hung = true
                kill(-pid, SIGKILL)
                break
            }
            // After spawn has exited, give its output closeGrace to close, then stop.
            if let e = exitedAt, t >= e + closeGrace { break }
            var fds: [pollfd] = []
            if outOpen { fds.append(pollfd(fd: outR, events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: errR, events: Int16(POLLIN), revents: 0)) }
            if statusOpen { fds.append(pollfd(fd: statusR, events: Int16(POLLIN), revents: 0)) }
            if !pending.isEmpty { fds.append(pollfd(fd: stdinKeep, events: Int16(POLLOUT), revents: 0)) }
            let r = poll(&fds, nfds_t(fds.count), 50)
            if r < 0 { if errno == EINTR { continue }; break }
            for p in fds where p.revents != 0 {
                if p.fd == stdinKeep {
                    let n = pending.withUnsafeBytes { send(stdinKeep, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 {
                        pending.removeFirst(n)
                        if pending.isEmpty { shutdown(stdinKeep, Int32(SHUT_WR)) }
                    } else if n < 0 && errno != EAGAIN && errno != EINTR {
                        pending = []
                    }
                    continue
                }
                let n = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 {
                    if p.fd == outR { outOpen = false }
                    if p.fd == errR { errOpen = false }
                    if p.fd == statusR { statusOpen = false; exitedAt = now() }
                    continue
                }
                let chunk = buffer[0..<n]
                if p.fd == outR {
                    out.append(contentsOf: chunk)
                    if firstStdoutAt == nil {
                        firstStdoutAt = now() - start
                        onFirstStdout?()
                    }
                } else if p.fd == errR {
                    err.append(contentsOf: chunk)
                } else {
                    status.append(contentsOf: chunk)
                }
            }
        }
        let outputHeldOpen = !hung && (outOpen || errOpen)
        close(outR); close(errR); close(statusR)
        if stdinKeep >= 0 { close(stdinKeep) }
        // Reap the wrapper; if a foreign reaper took it, waitpid fails with ECHILD.
        var ws: Int32 = 0
        while waitpid(pid, &ws, 0) < 0 && errno == EINTR {}
        let code = Int32(String(decoding: status, as: UTF8.self)) ?? -1
        let end = exitedAt ?? now()
        return Result(status: code, stdout: out, stderr: err, elapsed: end - start,
                      firstStdoutAt: firstStdoutAt, hung: hung, outputHeldOpen: outputHeldOpen,
                      wrapperPID: pid)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func highFD(_ fd: Int32) -> Int32 {
        guard fd >= 0 else { return fd }
        let high = fcntl(fd, F_DUPFD_CLOEXEC, 10)
        precondition(high >= 0)
        close(fd)
        return high
    }

    private static func makePipe() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        precondition(c_pipe2(&fds, O_CLOEXEC) == 0)
        return (highFD(fds[0]), highFD(fds[1]))
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}

/// pipe2(2) (Glibc does not export it without _GNU_SOURCE). Close-on-exec from the
/// start, so a concurrent posix_spawn from another test thread cannot inherit it.
@_silgen_name("pipe2")
func c_pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// The JSON report with the types the contract gives each field.
struct Report: Decodable {
    struct Failure: Decodable {
        var step: String
        var errno: Int
        var message: String
    }

    var outcome: String
    var exit_code: Int?
    var signal: Int?
    var pid: Int?
    var wall_time_ms: Double
    var user_time_ms: Double
    var system_time_ms: Double
    var max_rss_kib: Int
    var stdout: String
    var stderr: String
    var stdout_bytes: Int
    var stderr_bytes: Int
    var stdout_truncated: Bool
    var stderr_truncated: Bool
    var error: Failure?
}

let reportKeys: Set<String> = [
    "outcome", "exit_code", "signal", "pid", "wall_time_ms", "user_time_ms", "system_time_ms",
    "max_rss_kib", "stdout", "stderr", "stdout_bytes", "stderr_bytes", "stdout_truncated",
    "stderr_truncated", "error",
]

/// Checks the JSON report's shape and its agreement with spawn's exit status.
@discardableResult
func checkedReport(_ r: CLI.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> Report {
    #expect(!r.hung, "spawn did not exit: \(r)", sourceLocation: sourceLocation)
    let object = try #require(r.json, "stdout is not one JSON object: \(r)", sourceLocation: sourceLocation)
    let missing = reportKeys.subtracting(object.keys)
    #expect(missing.isEmpty, "JSON report lacks \(missing.sorted())", sourceLocation: sourceLocation)
    let report = try r.report(sourceLocation: sourceLocation)
    // exit_code only when exited; signal only when a signal ended it.
    switch report.outcome {
    case "exited":
        #expect(report.exit_code != nil && report.signal == nil, "\(r)", sourceLocation: sourceLocation)
    case "spawn_failed":
        #expect(report.exit_code == nil && report.signal == nil, "\(r)", sourceLocation: sourceLocation)
    default:
        #expect(report.exit_code == nil || report.signal == nil, "\(r)", sourceLocation: sourceLocation)
    }
    #expect((report.error != nil) == (report.outcome == "spawn_failed"), "\(r)", sourceLocation: sourceLocation)
    #expect(report.stdout_bytes >= 0 && report.stderr_bytes >= 0, sourceLocation: sourceLocation)
    #expect(report.wall_time_ms >= 0 && report.user_time_ms >= 0 && report.system_time_ms >= 0,
            sourceLocation: sourceLocation)
    // Exit status conventions.
    if report.outcome == "timed_out" {
        #expect(r.status == 124, "\(r)", sourceLocation: sourceLocation)
    } else if let code = report.exit_code {
        #expect(r.status == Int32(code), "\(r)", sourceLocation: sourceLocation)
    } else if let sig = report.signal {
        #expect(r.status == 128 + Int32(sig), "\(r)", sourceLocation: sourceLocation)
    }
    return report
}

/// A fresh directory for one test.
final class TempDir {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "/spawnTests.XXXXXX").utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        let raw = String(cString: p!)
        if let r = realpath(raw, nil) {
            path = String(cString: r)
            free(r)
        } else {
            path = raw
        }
    }

    func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func write(_ name: String, _ contents: String, mode: mode_t = 0o644) -> String {
        // Written with a close-on-exec descriptor: a descriptor open for writing that a
        // concurrently spawned process inherited would make exec of this file fail with ETXTBSY.
        let p = file(name)
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        precondition(fd >= 0, "cannot create \(p)")
        let bytes = Array(contents.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; preconditionFailure("write \(p)") }
            offset += n
        }
        close(fd)
        chmod(p, mode)
        return p
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}



enum Proc {
    /// The fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, ...].
    static func statFields(_ text: String) -> [String] {
        guard let close = text.lastIndex(of: ")") else { return [] }
        return text[text.index(after: close)...].split(separator: " ").map(String.init)
    }

    /// Whether `pid` is a live (not zombie) process whose command line contains `marker`.
    static func isAliveWith(pid: pid_t, marker: String) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        let fields = statFields(stat)
        if fields.first == "Z" || fields.first == "X" { return false }
        guard let cmd = readFile("/proc/\(pid)/cmdline") else { return false }
        let text = String(decoding: cmd.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return text.contains(marker)
    }

    static func readFile(_ path: String) -> [UInt8]? { ProcFS.readFile(path) }

    /// Live processes whose command line contains `marker` (a unique per-test string).
    static func pids(withMarker marker: String) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { pid_t($0) }.filter { isAliveWith(pid: $0, marker: marker) }
    }

    /// Kills what a test left behind: only processes carrying the test's unique marker.
    static func killAll(withMarker marker: String) {
        for pid in pids(withMarker: marker) { kill(pid, SIGKILL) }
    }

    /// Waits (bounded by `within`, a hang detector: it returns as soon as the
    /// process is gone) until no live process carries `marker`; true if none is left.
    static func waitGone(marker: String, pid: pid_t? = nil, within bound: Duration = TestTime.hang) -> Bool {
        let end = CLI.now() + bound.inSeconds
        repeat {
            let alive = pid.map { isAliveWith(pid: $0, marker: marker) } ?? !pids(withMarker: marker).isEmpty
            if !alive { return true }
            usleep(20_000)
        } while CLI.now() < end
        return false
    }
}

/// A unique duration for `sleep`, so its command line identifies this test's
/// processes. By default it lives for TestTime.childLifetime (3600 s), beyond any
/// bound: a test that uses it must end it (the library's teardown, or
/// Proc.killAll(withMarker:) in a defer).
func uniqueSleep(_ base: Int = Int(TestTime.childSleep)!) -> String {
    "\(base).\(String(format: "%06d", Int.random(in: 1...999_999)))"
}
