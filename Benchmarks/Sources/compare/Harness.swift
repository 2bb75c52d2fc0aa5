import CFloor

#if canImport(Glibc)
import Glibc
#endif

/// A failure of a benchmark operation (a wrong count, a failed child).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One operation of one implementation. `warm` is true in the discarded warm-up
/// round (big scenarios then use a smaller workload). Returns a count (bytes,
/// lines, children) that the harness checks.
typealias Operation = @Sendable (_ warm: Bool) async throws -> Int

struct Implementation: Sendable {
    /// Short id for the RATIO lines (`asyncspawn`, `c-floor`, ...).
    let id: String
    /// The table's label.
    let label: String
    let operation: Operation
}

/// How a scenario's times are shown.
enum Kind {
    /// Time per operation; ratio = time / floor time (lower is faster).
    case latency
    /// `units` per operation (bytes or lines) shown per second; ratio = throughput /
    /// floor throughput (higher is faster).
    case throughput(units: Double, unit: ThroughputUnit)
}

enum ThroughputUnit {
    case gigabytes, lines
    func format(_ perSecond: Double) -> String {
        switch self {
        case .gigabytes: return fixed(perSecond / 1e9, 2) + " GB/s"
        case .lines: return fixed(perSecond / 1e6, 2) + " M lines/s"
        }
    }
}

/// A NUL-terminated C string held in an array.
func string(_ chars: [CChar]) -> String {
    let bytes = chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Seconds of a monotonic clock.
@inline(__always) func now() -> Double { Double(cfloor_now_ns()) / 1e9 }

func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let s = values.sorted()
    let m = s.count / 2
    return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (value * p).rounded() / p
    var s = "\(r)"
    // Pad or trim to `digits` decimals (Double's description is shortest-form).
    if let dot = s.firstIndex(of: ".") {
        let decimals = s.distance(from: dot, to: s.endIndex) - 1
        if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
    } else if digits > 0 {
        s += "." + String(repeating: "0", count: digits)
    }
    if s.contains("e") { return "\(value)" }
    return s
}

func formatDuration(_ seconds: Double) -> String {
    if seconds < 1e-3 { return fixed(seconds * 1e6, 1) + " µs" }
    if seconds < 1 { return fixed(seconds * 1e3, 2) + " ms" }
    return fixed(seconds, 3) + " s"
}

/// Everything measured, for the summary at the end.
final class Results: @unchecked Sendable {
    // @unchecked: written and read by the harness's one task.
    static let shared = Results()
    /// ratio[scenario][implementation]
    var ratios: [String: [String: Double]] = [:]
    /// median seconds per operation, [scenario][implementation]
    var medians: [String: [String: Double]] = [:]
    /// extra figures: [scenario][implementation][metric]
    var metrics: [String: [String: [String: Double]]] = [:]
    var ratioLines: [String] = []
    var markdown: [String] = []

    func ratio(_ scenario: String, _ id: String, _ value: Double) {
        ratios[scenario, default: [:]][id] = value
        let line = "RATIO \(scenario) \(id) \(fixed(value, 3))"
        ratioLines.append(line)
        print(line)
    }

    func metric(_ scenario: String, _ id: String, _ name: String, _ value: Double) {
        metrics[scenario, default: [:]][id, default: [:]][name] = value
    }

    func emit(_ line: String = "") {
        print(line)
        markdown.append(line)
    }
}

/// Round medians of every implementation: [id] -> seconds per op, one per round.
typealias RoundMedians = [String: [Double]]

/// Runs the implementations interleaved in rounds, a warm-up round first
/// (discarded). Within a round the implementations take turns one operation at
/// a time (A B C A B C ...) until each has run `ops`; the round's figure for an
/// implementation is the median of its operations.
func runRounds(
    _ implementations: [Implementation], rounds: Int, ops: Int, warmOps: Int = 1,
    check: (String, Int) throws -> Void
) async throws -> RoundMedians {
    var result: RoundMedians = [:]
    for round in 0...rounds {
        let warm = round == 0
        var times: [String: [Double]] = [:]
        for _ in 0..<(warm ? warmOps : ops) {
            for impl in implementations {
                let t0 = now()
                let count = try await impl.operation(warm)
                let t1 = now()
                if !warm { try check(impl.id, count) }
                times[impl.id, default: []].append(t1 - t0)
            }
        }
        if !warm {
            for impl in implementations { result[impl.id, default: []].append(median(times[impl.id]!)) }
        }
    }
    return result
}

/// Per-round ratios against `floor`, then the median over rounds.
func ratios(_ data: RoundMedians, id: String, floor: String, kind: Kind) -> Double {
    let mine = data[id]!, base = data[floor]!
    var r: [Double] = []
    for i in 0..<min(mine.count, base.count) {
        switch kind {
        case .latency: r.append(mine[i] / base[i])
        case .throughput: r.append(base[i] / mine[i])
        }
    }
    return median(r)
}

/// Prints a scenario's table and its RATIO lines, and records them.
func report(
    scenario: String, title: String, _ implementations: [Implementation], _ data: RoundMedians,
    floor: String = "c-floor", kind: Kind, rounds: Int, ops: Int, note: String? = nil,
    extraHeader: [String] = [], extra: (String) -> [String] = { _ in [] }
) {
    let R = Results.shared
    R.emit("### \(title)")
    R.emit("")
    R.emit("Scenario `\(scenario)`: \(rounds) round\(rounds == 1 ? "" : "s") after a warm-up round, \(ops) operation\(ops == 1 ? "" : "s") per implementation per round.")
    if let note { R.emit(note) }
    R.emit("")
    let ratioHeader: String
    switch kind {
    case .latency:
        ratioHeader = "time vs C floor (lower is faster)"
        R.emit("| implementation | median per op | min–max of round medians | \(ratioHeader) |" + extraHeader.map { " \($0) |" }.joined())
    case .throughput:
        ratioHeader = "throughput vs C floor (higher is faster)"
        R.emit("| implementation | median throughput | min–max of round medians | \(ratioHeader) |" + extraHeader.map { " \($0) |" }.joined())
    }
    R.emit("|---|---:|---:|---:|" + extraHeader.map { _ in "---:|" }.joined())
    var lines: [(String, Double)] = []
    for impl in implementations {
        guard let rounds = data[impl.id] else { continue }
        let med = median(rounds)
        let lo = rounds.min()!, hi = rounds.max()!
        let ratio = ratios(data, id: impl.id, floor: floor, kind: kind)
        R.medians[scenario, default: [:]][impl.id] = med
        let cells: String
        switch kind {
        case .latency:
            cells = "\(formatDuration(med)) | \(formatDuration(lo)) – \(formatDuration(hi))"
        case .throughput(let units, let unit):
            // The slowest round has the lowest throughput.
            cells = "\(unit.format(units / med)) | \(unit.format(units / hi)) – \(unit.format(units / lo))"
        }
        R.emit("| \(impl.label) | \(cells) | \(fixed(ratio, 2))× |" + extra(impl.id).map { " \($0) |" }.joined())
        lines.append((impl.id, ratio))
    }
    R.emit("")
    for (id, ratio) in lines { R.ratio(scenario, id, ratio) }
    print("")
}
