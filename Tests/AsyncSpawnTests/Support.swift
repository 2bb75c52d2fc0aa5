// Shared helpers of the AsyncSpawn tests: where the probe is, parsing its
// report, looking at /proc, a deadline race, and a gate that lets the tests that
// measure the whole process (descriptors, threads, children, RSS) run alone.

import AsyncSpawn
import Foundation
import Synchronization
@_exported import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - The probe

enum Probe {
    /// The probe the tests run: the `spawn-probe` next to the test bundle, or,
    /// when this process runs under a sanitizer, an uninstrumented build of
    /// the same source (``UninstrumentedProbe``).
    static let path: String = isSanitized ? UninstrumentedProbe.path : builtProduct

    /// The `spawn-probe` executable: a sibling of the test bundle. The runner's
    /// /proc/self/exe lives in the build directory (.build*/debug/); walk up from
    /// it to the first directory that holds `spawn-probe`.
    static var builtProduct: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        precondition(n > 0, "cannot read /proc/self/exe")
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("spawn-probe").path
            if access(candidate, X_OK) == 0 { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        fatalError("spawn-probe not found next to \(exe); build with --build-tests")
    }

    /// A configuration running the probe with `arguments`.
    static func config(_ arguments: String...) -> Configuration {
        Configuration(executable: path, arguments: arguments)
    }

    static func config(_ arguments: [String]) -> Configuration {
        Configuration(executable: path, arguments: arguments)
    }

    /// A copy of the probe in a directory every user may enter (0755), for
    /// children that drop to uid 65534.
    static let worldExecutableCopy: String = {
        var template = Array("/tmp/asyncspawn-probe-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        let dir = String(cString: p!)
        chmod(dir, 0o755)
        let target = dir + "/spawn-probe"
        do { try copyExecutable(path, to: target) } catch { preconditionFailure("\(error)") }
        // Kept for the rest of the run (tests use it concurrently), removed at exit.
        worldCopyDirectory = dir
        atexit {
            if let dir = worldCopyDirectory { try? FileManager.default.removeItem(atPath: dir) }
        }
        return target
    }()
}

/// The directory of ``Probe/worldExecutableCopy``, for the atexit clean-up.
nonisolated(unsafe) private var worldCopyDirectory: String?


// MARK: - AddressSanitizer


/// LeakSanitizer suppressions built into the test runner, so that `swift test
/// --sanitize=address` needs no LSAN_OPTIONS. The runtime calls this (a weak
/// hook) when it checks for leaks at exit; it is inert in other builds.
///
/// - libXCTest: the toolchain's XCTest runner leaks its suite-run objects
///   (144 bytes) in the XCTest pass that `swift test` makes even when every
///   test uses Swift Testing.
/// - Foundation's `Process.run()` leaks a weak-reference side table (32 bytes)
///   per process; SeccompTests start gcc and python3 with it.
///
/// Nothing of this package is involved in either.
@_cdecl("__lsan_default_suppressions")
public func lsanDefaultSuppressions() -> UnsafePointer<CChar> {
    let text: StaticString = "leak:libXCTest.so\nleak:Foundation7ProcessC3run\n"
    return UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// The probe's `report` output as a dictionary.
struct Report {
    let fields: [String: String]

    init(_ text: String) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let space = line.firstIndex(of: " ") {
                fields[String(line[..<space])] = String(line[line.index(after: space)...])
            } else {
                fields[String(line)] = ""
            }
        }
        self.fields = fields
    }

    subscript(_ key: String) -> String? { fields[key] }

    func int(_ key: String) -> Int32? { fields[key].flatMap { Int32($0) } }

    /// "SOFT HARD" of `rlimit.NAME`.
    func limit(_ name: String) -> (soft: String, hard: String)? {
        guard let v = fields["rlimit.\(name)"] else { return nil }
        let parts = v.split(separator: " ")
        guard parts.count == 2 else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    var fds: [Int32] {
        (fields["fds"] ?? "").split(separator: ",").compactMap { Int32($0) }
    }
}

/// Runs the probe's `report` under `config` (whose arguments are replaced).
func probeReport(_ config: Configuration = Probe.config()) async throws -> (Report, RunResult) {
    var c = config
    c.arguments = ["report"]
    let result = try await run(c)
    return (Report(result.standardOutputString), result)
}

extension LimitValue {
    /// As the probe prints it.
    var probeText: String {
        switch self {
        case .unlimited: "unlimited"
        case .value(let v): "\(v)"
        }
    }
}

// MARK: - /proc

enum Proc {
    /// The state letter of /proc/PID/stat (R, S, Z, ...), nil when the process is gone.
    static func state(_ pid: Int32) -> Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        let rest = text[text.index(after: close)...].drop(while: { $0 == " " })
        return rest.first
    }

    /// The parent pid of /proc/PID/stat.
    static func parent(_ pid: Int32) -> Int32? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        let parts = text[text.index(after: close)...].split(separator: " ")
        return parts.count > 1 ? Int32(parts[1]) : nil
    }

    /// True when `pid` no longer runs: gone, or a zombie (a reparented
    /// grandchild may wait a while for init to reap it).
    static func isDead(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return errno == ESRCH }
        guard let s = state(pid) else { return true }
        return s == "Z" || s == "X"
    }

    /// True when `pid` exists and is not a zombie.
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let s = state(pid) else { return false }
        return s != "Z" && s != "X"
    }

    /// This process's open descriptors with what they point to.
    static func openFDs() -> [Int32: String] {
        var result: [Int32: String] = [:]
        guard let dir = opendir("/proc/self/fd") else { return [:] }
        let own = dirfd(dir)
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let fd = Int32(name), fd != own else { continue }
            var buffer = [CChar](repeating: 0, count: 512)
            let n = readlink("/proc/self/fd/\(fd)", &buffer, 511)
            result[fd] = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        }
        closedir(dir)
        return result
    }

    /// The kernel id of the calling thread (gettid is not exported to Swift).
    static func currentThreadID() -> Int32 {
        var buffer = [CChar](repeating: 0, count: 128)
        let n = readlink("/proc/thread-self", &buffer, 127)
        guard n > 0 else { return -1 }
        let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int32(text.split(separator: "/").last ?? "") ?? -1
    }

    /// Threads of this process.
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    /// Thread ids of this process.
    static func threadIDs() -> Set<Int32> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []).compactMap { Int32($0) })
    }

    /// A field of /proc/self/status in KiB (VmRSS, VmHWM, ...).
    static func statusKiB(_ key: String, pid: String = "self") -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            let digits = line.dropFirst(key.count + 1).filter { $0.isNumber }
            return Int(digits) ?? -1
        }
        return -1
    }

    /// `wchar` of /proc/PID/io: bytes the process has written.
    static func bytesWritten(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("wchar:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Pids of this process's children that are zombies.
    static func zombieChildren() -> Set<Int32> {
        let me = getpid()
        var result = Set<Int32>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), pid != me else { continue }
            if Proc.parent(pid) == me && Proc.state(pid) == "Z" { result.insert(pid) }
        }
        return result
    }

    /// SIGKILLs every process whose command line holds `marker` (clean-up of
    /// leftovers after a failed test).
    static func killAll(withArgument marker: String) {
        for pid in processes(withArgument: marker) where pid != getpid() { kill(pid, SIGKILL) }
    }

    static func readFile(_ path: String) -> [UInt8]? { ProcFS.readFile(path) }

    /// Pids whose command line contains `marker` as a whole argument.
    static func processes(withArgument marker: String) -> [Int32] {
        var result: [Int32] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), let data = readFile("/proc/\(pid)/cmdline") else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if args.contains(marker) { result.append(pid) }
        }
        return result
    }
}

// MARK: - Files

/// A fresh directory under /tmp, removed on deinit.
final class TempDir: @unchecked Sendable {
    let path: String
    init(mode: mode_t = 0o700) {
        var template = Array("/tmp/asyncspawn-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        path = String(cString: p!)
        chmod(path, mode)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: - Byte checks

/// 64-bit FNV-1a, to compare large streams without keeping them.
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        // Contiguous bytes: a loop over the raw buffer. The generic loop below is
        // not specialised in a debug build: every element goes through the
        // collection's subscript by witness, whose coroutine frame is malloc'd,
        // one malloc and free per byte. Under AddressSanitizer each of those
        // records a stack trace and goes through the quarantine: this was what
        // made the 50 MB stream test take ~36 s there (issue 10), not the library.
        if let h = bytes.withContiguousStorageIfAvailable({ Self.hash(value, $0) }) {
            value = h
            return
        }
        var h = value
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        value = h
    }

    private static func hash(_ seed: UInt64, _ buffer: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h = seed
        var i = 0
        while i < buffer.count {
            h ^= UInt64(buffer[i])
            h = h &* 0x100_0000_01b3
            i += 1
        }
        return h
    }
}

/// The probe's `write N` pattern: byte i is '\n' when i % 64 == 63, else
/// 'a' + (i % 64) % 26.
func probePattern(_ count: Int) -> [UInt8] {
    (0..<count).map { i in i % 64 == 63 ? UInt8(ascii: "\n") : UInt8(ascii: "a") + UInt8((i % 64) % 26) }
}

// MARK: - Deadlines

struct DeadlineExceeded: Error, CustomStringConvertible {
    let what: String
    let limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Runs `body` in a task of its own and returns its result, or throws
/// ``DeadlineExceeded`` after `limit` (cancelling the task but not waiting for
/// it: a hung body cannot hang the test).
func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: String = "the operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let task = Task { try await body() }
    let slot = TestMutex<CheckedContinuation<Result<T, any Error>, Never>?>(nil)
    let resume: @Sendable (Result<T, any Error>) -> Void = { result in
        let c = slot.withLock { s -> CheckedContinuation<Result<T, any Error>, Never>? in
            let c = s
            s = nil
            return c
        }
        c?.resume(returning: result)
    }
    let timer = Task {
        try? await Task.sleep(for: limit)
        if !Task.isCancelled {
            resume(.failure(DeadlineExceeded(what: what, limit: limit)))
            task.cancel()
        }
    }
    let result = await withCheckedContinuation { (c: CheckedContinuation<Result<T, any Error>, Never>) in
        slot.withLock { $0 = c }
        Task {
            let r = await task.result
            resume(r)
        }
    }
    timer.cancel()
    return try result.get()
}

// MARK: - A one-shot event

/// A latch tasks can await; `fire()` releases every waiter, now and later.
final class Event: Sendable {
    private let state = TestMutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.fired = true
            let w = s.waiters
            s.waiters = []
            return w
        }
        for w in waiters { w.resume() }
    }
    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}

// MARK: - A box

/// Like `Synchronization.Mutex`, but on NSLock (a pthread mutex), which the
/// thread sanitizer understands: the futex-based Mutex shows up as false races.
final class TestMutex<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A tiny lock-protected box for test bookkeeping.
final class Box<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ v: Value) { lock.withLock { value = v } }
    func update<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

// MARK: - The process gate

/// A reader-writer gate over the whole test process: ordinary tests run
/// concurrently (shared), tests that measure the process (descriptor counts,
/// thread counts, zombies, RSS, a foreign reaper, an idle pool) run alone
/// (exclusive). First come, first served, so an exclusive test is not starved.
///
/// Only tests of this target pass through it; tests of other targets linked into
/// the same runner are not held back, so the measuring tests keep a little slack.
actor ProcessGate {
    static let shared = ProcessGate()

    private var readers = 0
    private var writer = false
    private var queue: [(exclusive: Bool, continuation: CheckedContinuation<Void, Never>)] = []

    func acquire(exclusive: Bool) async {
        if queue.isEmpty && (exclusive ? (!writer && readers == 0) : !writer) {
            if exclusive { writer = true } else { readers += 1 }
            return
        }
        await withCheckedContinuation { queue.append((exclusive, $0)) }
    }

    func release(exclusive: Bool) {
        if exclusive { writer = false } else { readers -= 1 }
        while let first = queue.first {
            if first.exclusive {
                guard !writer && readers == 0 else { break }
                writer = true
            } else {
                guard !writer else { break }
                readers += 1
            }
            queue.removeFirst()
            first.continuation.resume()
        }
    }
}

enum GateHolding {
    @TaskLocal static var held = false
}

/// Scopes every test it is applied to (directly or through its suite) in the
/// process gate. `.exclusive` tests run with no other test of this target.
struct Gate: TestTrait, SuiteTrait, TestScoping {
    let exclusive: Bool
    static var shared: Gate { Gate(exclusive: false) }
    static var exclusive: Gate { Gate(exclusive: true) }

    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        if test.isSuite || GateHolding.held {
            try await function()
            return
        }
        await ProcessGate.shared.acquire(exclusive: exclusive)
        do {
            try await GateHolding.$held.withValue(true) { try await function() }
        } catch {
            await ProcessGate.shared.release(exclusive: exclusive)
            throw error
        }
        await ProcessGate.shared.release(exclusive: exclusive)
    }
}

// MARK: - A thread of our own as a task executor

/// A task executor backed by a dedicated thread, so a test controls the thread
/// that calls the library: its signal mask, and when it exits.
///
/// ``retireThread()`` lets the current thread exit once its queue is empty; a
/// job enqueued later starts a fresh thread (running `setup` again), so tasks
/// that prefer this executor never strand.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var threadRunning = false
    private var retiring = false
    private var exitEvent = Event()
    private var currentThreadID: Int32 = 0
    private let setup: @Sendable () -> Void

    init(setup: @escaping @Sendable () -> Void = {}) {
        self.setup = setup
    }

    /// The kernel id of the thread now serving the executor (0: none yet).
    var threadID: Int32 { condition.withLock { currentThreadID } }

    private func startThread() {
        // Called with the condition's lock held.
        threadRunning = true
        exitEvent = Event()
        let exited = exitEvent
        let thread = Thread { [self] in
            let tid = Proc.currentThreadID()
            self.condition.withLock { self.currentThreadID = tid }
            self.setup()
            while true {
                self.condition.lock()
                while self.jobs.isEmpty && !self.retiring { self.condition.wait() }
                if self.jobs.isEmpty {
                    self.retiring = false
                    self.threadRunning = false
                    self.currentThreadID = 0
                    self.condition.unlock()
                    break
                }
                let job = self.jobs.removeFirst()
                self.condition.unlock()
                job.runSynchronously(on: self.asUnownedTaskExecutor())
            }
            exited.fire()
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        if !threadRunning { startThread() } else { condition.signal() }
        condition.unlock()
    }

    /// Lets the current thread exit once its queue is empty; returns after it has
    /// left its body (the kernel retires it a moment later).
    func retireThread() async {
        let event: Event? = condition.withLock {
            guard threadRunning else { return nil }
            retiring = true
            condition.signal()
            return exitEvent
        }
        await event?.wait()
    }
}

// MARK: - Misc

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// Expects `body` to throw a ``SpawnError`` and returns it.
func expectSpawnError(
    _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async -> SpawnError? {
    do {
        try await body()
        Issue.record("expected a SpawnError, got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as SpawnError {
        return error
    } catch {
        Issue.record("expected a SpawnError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
