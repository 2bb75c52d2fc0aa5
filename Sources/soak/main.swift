// soak — many spawns at once, of every kind, with leak checks along the way.
//
//   swift run -c release soak [--spawns N] [--concurrency C] [--check-every K]
//
// Mixes normal exits, timeouts, cancellations, output limits, spawn failures
// (parent side and child side) and seccomp kills; after every K spawns checks
// that open descriptors are back to the baseline, that no zombie child is left,
// that the thread count is bounded, and reports RSS growth after warm-up.
// Exits 1 when a spawn ends wrongly or a check fails.
import AsyncSpawn

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var spawns = 100_000
    var concurrency = 256
    var checkEvery = 10_000

    init(_ arguments: [String]) {
        var i = 0
        while i < arguments.count {
            let value = i + 1 < arguments.count ? Int(arguments[i + 1]) : nil
            switch arguments[i] {
            case "--spawns": spawns = value ?? spawns
            case "--concurrency": concurrency = value ?? concurrency
            case "--check-every": checkEvery = value ?? checkEvery
            default:
                print("usage: soak [--spawns N] [--concurrency C] [--check-every K]")
                exit(2)
            }
            i += 2
        }
        checkEvery = max(1, min(checkEvery, spawns))
    }
}

enum Kind: Int, CaseIterable {
    case exit, timeout, cancel, outputLimit, notFound, childFailure, seccompKill
}

/// Runs one spawn of `kind`; returns nil when it ended as expected, else why not.
func one(_ kind: Kind, _ index: Int) async -> String? {
    do {
        switch kind {
        case .exit:
            let code: Int32 = index % 2 == 0 ? 0 : 1
            let r = try await run(Configuration(executable: code == 0 ? "/bin/true" : "/bin/false"))
            return r.termination == .exited(code) && r.outcome == .exited ? nil : "exit: \(r.termination) \(r.outcome)"
        case .timeout:
            var c = Configuration(executable: "/bin/sleep", arguments: ["5"])
            c.timeout = .milliseconds(20)
            let r = try await run(c)
            return r.outcome == .timedOut ? nil : "timeout: \(r.outcome)"
        case .cancel:
            let task = Task { try await run(Configuration(executable: "/bin/sleep", arguments: ["5"])) }
            if index % 3 != 0 { await Task.yield() }
            task.cancel()
            do {
                let r = try await task.value
                return "cancel: returned \(r.outcome)"
            } catch is CancellationError {
                return nil
            }
        case .outputLimit:
            var c = Configuration(executable: "/usr/bin/head", arguments: ["-c", "200000", "/dev/zero"])
            c.outputLimit = 1000
            let r = try await run(c)
            return r.outcome == .outputLimit && r.standardOutput.count == 1000 && r.standardOutputTruncated
                ? nil : "output limit: \(r.outcome) \(r.standardOutput.count)"
        case .notFound:
            do {
                _ = try await run(Configuration(executable: "no-such-program-\(index % 7)"))
                return "not found: it ran"
            } catch let e as SpawnError where e.code == .executableNotFound {
                return nil
            }
        case .childFailure:
            var c = Configuration(executable: "/bin/true")
            c.workingDirectory = "/no/such/directory"
            do {
                _ = try await run(c)
                return "child failure: it ran"
            } catch let e as SpawnError where e.code == .childSetupFailed && e.step == "chdir" {
                return nil
            }
        case .seccompKill:
            var c = Configuration(executable: "/bin/true")
            c.seccomp = .deny(["exit_group"], with: .killProcess)
            let r = try await run(c)
            return r.outcome == .seccompViolation ? nil : "seccomp: \(r.outcome) \(r.termination)"
        }
    } catch {
        return "\(kind): unexpected error \(error)"
    }
}

func count(_ directory: String) -> Int {
    guard let d = opendir(directory) else { return -1 }
    defer { closedir(d) }
    var n = 0
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name != "." && name != ".." { n += 1 }
    }
    return n
}

/// This process's descriptors and what they name (for a report of the extra ones).
func descriptors() -> [String: String] {
    guard let d = opendir("/proc/self/fd") else { return [:] }
    defer { closedir(d) }
    var result: [String: String] = [:]
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name == "." || name == ".." { continue }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(name)", &buffer, 4095)
        result[name] = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
    return result
}

func zombieChildren() -> Int {
    let me = getpid()
    guard let d = opendir("/proc") else { return 0 }
    defer { closedir(d) }
    var zombies = 0
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        guard let first = name.first, first.isNumber else { continue }
        let fd = open("/proc/\(name)/stat", O_RDONLY)
        if fd < 0 { continue }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, 511)
        close(fd)
        guard n > 0 else { continue }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        guard let paren = text.lastIndex(of: ")") else { continue }
        let fields = text[text.index(after: paren)...].split(separator: " ")
        if fields.count > 2, fields[0] == "Z", Int32(fields[1]) == me { zombies += 1 }
    }
    return zombies
}

func residentKiB() -> Int {
    let fd = open("/proc/self/status", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buffer, 4095)
    guard n > 0 else { return 0 }
    for line in String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}

@main
struct Soak {
    static func main() async {
        let options = Options(Array(CommandLine.arguments.dropFirst()))
        let clock = ContinuousClock()
        let started = clock.now
        // Warm up: the reactor thread, the seccomp cache, the pool, and the
        // concurrency runtime's timer (a timerfd, made at the first Task.sleep,
        // which some kinds below use).
        for kind in Kind.allCases { _ = await one(kind, 0) }
        try? await Task.sleep(for: .milliseconds(1))
        let baselineFDs = count("/proc/self/fd")
        let baselineDescriptors = descriptors()
        let baselineThreads = count("/proc/self/task")
        var warmRSS: Int? = nil
        var failures = 0
        var done = 0
        print("soak: \(options.spawns) spawns, \(options.concurrency) at a time, checks every \(options.checkEvery); baseline \(baselineFDs) fds, \(baselineThreads) threads")
        while done < options.spawns {
            let batch = min(options.checkEvery, options.spawns - done)
            let start = done
            var peakThreads = 0
            let batchFailures = await withTaskGroup(of: String?.self) { group -> [String] in
                var next = 0, bad: [String] = []
                while next < min(options.concurrency, batch) {
                    let i = start + next
                    group.addTask { await one(Kind(rawValue: i % Kind.allCases.count)!, i) }
                    next += 1
                }
                while let result = await group.next() {
                    if let result { bad.append(result) }
                    if next % 64 == 0 { peakThreads = max(peakThreads, count("/proc/self/task")) }
                    if next < batch {
                        let i = start + next
                        group.addTask { await one(Kind(rawValue: i % Kind.allCases.count)!, i) }
                        next += 1
                    }
                }
                return bad
            }
            done += batch
            failures += batchFailures.count
            for f in batchFailures.prefix(5) { print("  wrong: \(f)") }
            // Streams close at scope end; give the drain timers of the last
            // children (250 ms) time to finish before counting.
            try? await Task.sleep(for: .milliseconds(400))
            let fds = count("/proc/self/fd"), threads = count("/proc/self/task")
            let zombies = zombieChildren(), rss = residentKiB()
            if warmRSS == nil { warmRSS = rss }
            var problems: [String] = []
            if fds != baselineFDs {
                let now = descriptors()
                let extra = now.filter { baselineDescriptors[$0.key] != $0.value }.map { "\($0.key) -> \($0.value)" }.sorted()
                let gone = baselineDescriptors.filter { now[$0.key] != $0.value }.map { "\($0.key) -> \($0.value)" }.sorted()
                problems.append("fds \(fds) != baseline \(baselineFDs) (new: \(extra), gone: \(gone))")
            }
            if zombies != 0 { problems.append("\(zombies) zombie children") }
            if peakThreads > baselineThreads + 16 { problems.append("peak threads \(peakThreads)") }
            failures += problems.count
            let elapsed = clock.now - started
            print("soak: \(done) done in \(elapsed), \(batchFailures.count) wrong, fds \(fds), zombies \(zombies), threads \(threads) (peak \(peakThreads)), RSS \(rss) KiB (growth since first check \(rss - (warmRSS ?? rss)) KiB)\(problems.isEmpty ? "" : " PROBLEMS: " + problems.joined(separator: ", "))")
        }
        print(failures == 0 ? "soak: \(done) passed, 0 failed" : "soak: \(done - failures) passed, \(failures) failed")
        exit(failures == 0 ? 0 : 1)
    }
}
