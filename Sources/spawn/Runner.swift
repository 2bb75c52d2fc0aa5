import AsyncSpawn
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs the plan through the library, forwards or collects the output, prints
/// the JSON report when asked, and returns spawn's exit status.
struct Runner {
    let plan: Plan

    func run() async -> Int32 {
        installSignalHandlers()
        let json = plan.json
        let stdinSource = plan.stdin
        let pid = Mutex<Int32?>(nil)
        do {
            let (value, report) = try await withChildProcess(plan.configuration) { child -> Collected in
                pid.withLock { $0 = child.processID }
                childPID.store(child.processID, ordering: .relaxed)
                childGroup.store(child.processGroupID.map { -$0 } ?? child.processID, ordering: .relaxed)
                async let out = json ? collect(child.standardOutput) : forward(child.standardOutput, to: 1)
                async let err = json ? collect(child.standardError) : forward(child.standardError, to: 2)
                // The feeder must not outlive the child: a stdin that never ends
                // (a terminal, `sleep | spawn --stdin -`) would otherwise hold spawn.
                let feeder = Task { await feed(stdinSource, to: child.standardInput) }
                defer { feeder.cancel() }
                _ = try await child.waitForReport()
                let (o, e) = try await (out, err)
                feeder.cancel()
                await feeder.value
                return Collected(stdout: o, stderr: e,
                                 stdoutTruncated: child.standardOutput.truncated,
                                 stderrTruncated: child.standardError.truncated)
            }
            childGroup.store(0, ordering: .relaxed)
            if json { printJSON(report: report, collected: value, error: nil) }
            return exitStatus(report)
        } catch let error as SpawnError {
            childGroup.store(0, ordering: .relaxed)
            return failed(error, pid: pid.withLock { $0 })
        } catch {
            childGroup.store(0, ordering: .relaxed)
            writeAll(2, Array("spawn: \(error)\n".utf8))
            return 125
        }
    }

    struct Collected: Sendable {
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stdoutTruncated: Bool
        var stderrTruncated: Bool
    }

    /// spawn's exit status for a child that ran (timeout(1) and env(1) conventions).
    func exitStatus(_ report: ProcessReport) -> Int32 {
        if report.outcome == .timedOut { return 124 }
        switch report.termination {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal.rawValue
        }
    }

    /// Reports a spawn failure; 127 not found, 126 not runnable, 125 otherwise.
    func failed(_ error: SpawnError, pid: Int32?) -> Int32 {
        let status: Int32
        switch (error.code, error.step) {
        case (.executableNotFound, _), (.childSetupFailed, "exec"):
            let e = error.errno ?? ENOENT
            status = (e == ENOENT || e == ENOTDIR) ? 127 : 126
        default:
            status = 125
        }
        let isSpawnFailure = error.code == .executableNotFound || error.code == .childSetupFailed || error.code == .spawnFailed
        if plan.json && isSpawnFailure {
            printJSON(report: nil, collected: nil, error: error)
        } else {
            writeAll(2, Array("spawn: \(error.message)\n".utf8))
        }
        return status
    }

    // MARK: Streams

    func collect(_ output: ChildOutput) async throws -> [UInt8] {
        try await output.collect()
    }

    /// Forwards chunks to `fd` as they arrive; returns nothing (not collected).
    func forward(_ output: ChildOutput, to fd: Int32) async throws -> [UInt8] {
        for try await chunk in output {
            if !writeAll(fd, chunk) {
                // Our reader went away: let the child see EPIPE, as it would have.
                output.close()
                break
            }
        }
        return []
    }

    func feed(_ source: StdinSource, to writer: StandardInputWriter) async {
        guard case .file(let fd) = source else { return }
        let pump = StdinPump(fd: fd)
        defer {
            pump.stop()
            writer.finish()
        }
        for await chunk in pump.chunks {
            if Task.isCancelled { return }
            do {
                try await writer.write(chunk)
            } catch {
                return  // the child closed its stdin, or the child is gone
            }
            pump.consumed()
        }
    }

    // MARK: Report

    func printJSON(report: ProcessReport?, collected: Collected?, error: SpawnError?) {
        var fields: [(String, String)] = []
        let outcome = error != nil ? "spawn_failed" : report!.outcome.rawValue
        fields.append(("outcome", JSON.string(outcome)))
        var exitCode = "null", signal = "null"
        if let report {
            switch report.termination {
            case .exited(let code): exitCode = "\(code)"
            case .signaled(let s): signal = "\(s.rawValue)"
            }
        }
        fields.append(("exit_code", exitCode))
        fields.append(("signal", signal))
        fields.append(("pid", report.map { "\($0.processID)" } ?? "null"))
        func ms(_ d: Duration?) -> String {
            guard let d else { return "0" }
            let (s, atto) = d.components
            let value = Double(s) * 1000 + Double(atto) / 1e15
            return JSON.number((value * 1000).rounded() / 1000)
        }
        fields.append(("wall_time_ms", ms(report?.usage.wallTime)))
        fields.append(("user_time_ms", ms(report?.usage.userTime)))
        fields.append(("system_time_ms", ms(report?.usage.systemTime)))
        fields.append(("max_rss_kib", "\(report?.usage.maxResidentSetKiB ?? 0)"))
        let out = collected?.stdout ?? [], err = collected?.stderr ?? []
        fields.append(("stdout", JSON.string(String(decoding: out, as: UTF8.self))))
        fields.append(("stderr", JSON.string(String(decoding: err, as: UTF8.self))))
        fields.append(("stdout_bytes", "\(out.count)"))
        fields.append(("stderr_bytes", "\(err.count)"))
        fields.append(("stdout_truncated", collected?.stdoutTruncated == true ? "true" : "false"))
        fields.append(("stderr_truncated", collected?.stderrTruncated == true ? "true" : "false"))
        if let error {
            let e = error.errno ?? 0
            fields.append(("error", "{\"step\": \(JSON.string(error.step ?? "spawn")), \"errno\": \(e), \"message\": \(JSON.string(SpawnError.describe(errno: e)))}"))
        } else {
            fields.append(("error", "null"))
        }
        let body = fields.map { "  \(JSON.string($0.0)): \($0.1)" }.joined(separator: ",\n")
        writeAll(1, Array("{\n\(body)\n}\n".utf8))
    }

    // MARK: Signals

    /// SIGINT, SIGTERM and SIGHUP to spawn kill the child's group, then spawn
    /// exits 128+N: nothing is left running.
    ///
    /// The group is signalled by its id only while the child, its leader, is
    /// unreaped (`waitid` with `WNOWAIT` finds it, alive or a zombie): after the
    /// reap the id may already name an unrelated group. Then only the child's
    /// pid would be left to signal, and it is gone too.
    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { received in
                let target = childGroup.load(ordering: .relaxed)
                let leader = childPID.load(ordering: .relaxed)
                if target != 0 && leader > 0 {
                    var info = siginfo_t()
                    // Only async-signal-safe calls here: waitid and kill are system calls.
                    if waitid(P_PID, id_t(leader), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                        kill(target, SIGKILL)
                    }
                }
                _exit(128 + received)
            }
        }
    }
}

enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func number(_ d: Double) -> String {
        if d == d.rounded() && abs(d) < 1e15 { return "\(Int64(d)).0" }
        return "\(d)"
    }
}

/// Reads a descriptor on a thread of its own (a file or a terminal cannot be
/// polled) and hands over one chunk at a time: the next read waits until the
/// previous chunk was written to the child, so memory stays bounded.
final class StdinPump: @unchecked Sendable {
    // @unchecked: `stopped` is atomic; the rest is immutable after init.
    let fd: Int32
    let chunks: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let semaphore = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    init(fd: Int32) {
        self.fd = fd
        (chunks, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let r = pthread_create(&thread, nil, { raw in
            let pump = Unmanaged<StdinPump>.fromOpaque(raw!).takeRetainedValue()
            pump.loop()
            return nil
        }, box.toOpaque())
        if r == 0 { pthread_detach(thread) } else { box.release(); continuation.finish() }
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopped.load(ordering: .relaxed) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            continuation.yield(Array(buffer[0..<n]))
            semaphore.wait()
        }
        continuation.finish()
    }

    func consumed() { semaphore.signal() }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        semaphore.signal()
        continuation.finish()
    }
}
