import AsyncSpawn

/// The answer to `POST /run`: the same fields, in the same order and with the same
/// meaning, as the JSON report of the `spawn` CLI (`spawn --json`), plus `limits`
/// (the limits the run got, after defaults).
public struct RunReport: Sendable {
    /// `exited`, `signaled`, `timed_out`, `cpu_limit`, `file_size_limit`,
    /// `output_limit`, `seccomp_violation`, or `spawn_failed`.
    public var outcome: String
    public var exitCode: Int32?
    public var signal: Int32?
    public var pid: Int32?
    public var wallTime: Duration?
    public var userTime: Duration?
    public var systemTime: Duration?
    public var maxRSSKiB: Int
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Only for `spawn_failed`.
    public var error: SpawnError?
    public var limits: RunLimits

    init(
        report: ProcessReport, stdout: [UInt8], stderr: [UInt8],
        stdoutTruncated: Bool, stderrTruncated: Bool, limits: RunLimits
    ) {
        outcome = report.outcome.rawValue
        switch report.termination {
        case .exited(let code): exitCode = code
        case .signaled(let s): signal = s.rawValue
        }
        pid = report.processID
        wallTime = report.usage.wallTime
        userTime = report.usage.userTime
        systemTime = report.usage.systemTime
        maxRSSKiB = report.usage.maxResidentSetKiB
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.limits = limits
    }

    init(spawnFailure: SpawnError, limits: RunLimits) {
        outcome = "spawn_failed"
        maxRSSKiB = 0
        stdout = []
        stderr = []
        stdoutTruncated = false
        stderrTruncated = false
        error = spawnFailure
        self.limits = limits
    }

    /// One line of JSON (no newline inside, so it also fits in one SSE `data:` line).
    public func json() -> String {
        var fields: [(String, String)] = []
        fields.append(("outcome", JSON.string(outcome)))
        fields.append(("exit_code", exitCode.map { "\($0)" } ?? "null"))
        fields.append(("signal", signal.map { "\($0)" } ?? "null"))
        fields.append(("pid", pid.map { "\($0)" } ?? "null"))
        fields.append(("wall_time_ms", JSON.milliseconds(wallTime)))
        fields.append(("user_time_ms", JSON.milliseconds(userTime)))
        fields.append(("system_time_ms", JSON.milliseconds(systemTime)))
        fields.append(("max_rss_kib", "\(maxRSSKiB)"))
        fields.append(("stdout", JSON.string(String(decoding: stdout, as: UTF8.self))))
        fields.append(("stderr", JSON.string(String(decoding: stderr, as: UTF8.self))))
        fields.append(("stdout_bytes", "\(stdout.count)"))
        fields.append(("stderr_bytes", "\(stderr.count)"))
        fields.append(("stdout_truncated", stdoutTruncated ? "true" : "false"))
        fields.append(("stderr_truncated", stderrTruncated ? "true" : "false"))
        if let error {
            let e = error.errno ?? 0
            let message = error.errno.map { SpawnError.describe(errno: $0) } ?? error.message
            fields.append(
                (
                    "error",
                    JSON.object([
                        ("step", JSON.string(error.step ?? "spawn")),
                        ("errno", "\(e)"),
                        ("message", JSON.string(message)),
                    ])
                ))
        } else {
            fields.append(("error", "null"))
        }
        fields.append(("limits", limits.json()))
        return JSON.object(fields)
    }
}

extension RunLimits {
    func json() -> String {
        JSON.object([
            ("cpu_seconds", "\(cpuSeconds)"),
            ("memory_bytes", "\(memoryBytes)"),
            ("wall_seconds", JSON.number(wallSeconds)),
            ("output_bytes", "\(outputBytes)"),
        ])
    }
}

/// Minimal JSON writing, formatted like the `spawn` CLI's report.
enum JSON {
    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }

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
                // Control characters, and U+2028/U+2029 (line terminators for some parsers).
                if scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029 {
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

    /// Milliseconds with three decimals, as the CLI prints them; 0 when unknown.
    static func milliseconds(_ d: Duration?) -> String {
        guard let d else { return "0" }
        let (s, atto) = d.components
        let value = Double(s) * 1000 + Double(atto) / 1e15
        return number((value * 1000).rounded() / 1000)
    }
}
