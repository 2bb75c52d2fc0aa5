import AsyncSpawn

/// A malformed command-line value: the message names the option and the value.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Parsers for the values the `spawn` CLI accepts (prlimit(1) and timeout(1) syntax).
enum ValueParsing {
    /// One side of a limit: a number (with K/M/G/T for byte-sized limits, powers
    /// of 1024) or `unlimited`.
    static func limitSide(_ text: String, bytes: Bool) -> LimitValue? {
        let t = text.lowercased()
        if t == "unlimited" || t == "infinity" { return .unlimited }
        guard let n = size(text, allowSuffix: bytes) else { return nil }
        return .value(n)
    }

    /// A non-negative integer, optionally followed by K, M, G or T (powers of 1024).
    static func size(_ text: String, allowSuffix: Bool) -> UInt64? {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        if allowSuffix, let last = digits.last {
            switch last {
            case "K", "k": multiplier = 1 << 10
            case "M", "m": multiplier = 1 << 20
            case "G", "g": multiplier = 1 << 30
            case "T", "t": multiplier = 1 << 40
            default: break
            }
            if multiplier != 1 { digits.removeLast() }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }),
              let n = UInt64(digits) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        if overflow || product == UInt64.max { return nil }
        return product
    }

    /// A limit value: `N`, `SOFT:HARD`, `SOFT:`, `:HARD`; either side may be `unlimited`.
    static func limit(_ text: String, option: String, bytes: Bool) throws -> Limit {
        func bad(_ why: String) -> UsageError {
            UsageError(message: "invalid value '\(text)' for --\(option): \(why)")
        }
        let what = bytes ? "expected N, SOFT:HARD, SOFT: or :HARD with N a number of bytes (K, M, G, T suffixes) or 'unlimited'"
                         : "expected N, SOFT:HARD, SOFT: or :HARD with N a non-negative integer or 'unlimited'"
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            guard let v = limitSide(parts[0], bytes: bytes) else { throw bad(what) }
            return Limit(v)
        case 2:
            if parts[0].isEmpty && parts[1].isEmpty { throw bad(what) }
            var soft: LimitValue? = nil, hard: LimitValue? = nil
            if !parts[0].isEmpty {
                guard let v = limitSide(parts[0], bytes: bytes) else { throw bad(what) }
                soft = v
            }
            if !parts[1].isEmpty {
                guard let v = limitSide(parts[1], bytes: bytes) else { throw bad(what) }
                hard = v
            }
            if let s = soft, let h = hard, s.isAbove(h) {
                throw bad("the soft limit is above the hard limit")
            }
            return Limit(soft: soft, hard: hard)
        default:
            throw bad(what)
        }
    }

    /// The largest DURATION (README: "at most 999,999,999 seconds").
    static let maximumSeconds: Double = 999_999_999

    /// A duration: a decimal number with an optional unit `ms`, `s`, `m`, `h`
    /// (no unit: seconds), at most ``maximumSeconds``.
    static func duration(_ text: String, option: String) throws -> Duration {
        let bad = UsageError(message: "invalid value '\(text)' for --\(option): expected a non-negative decimal number with an optional unit ms, s, m or h, at most \(Int(maximumSeconds)) seconds")
        var number = Substring(text)
        var scale: Double = 1
        if number.hasSuffix("ms") { scale = 0.001; number.removeLast(2) }
        else if number.hasSuffix("s") { number.removeLast() }
        else if number.hasSuffix("m") { scale = 60; number.removeLast() }
        else if number.hasSuffix("h") { scale = 3600; number.removeLast() }
        guard !number.isEmpty,
              number.allSatisfy({ ($0 >= "0" && $0 <= "9") || $0 == "." }),
              number.filter({ $0 == "." }).count <= 1, number != ".",
              let value = Double(number), value.isFinite, value >= 0 else { throw bad }
        let seconds = value * scale
        guard seconds <= maximumSeconds else { throw bad }
        let whole = seconds.rounded(.down)
        return .seconds(Int64(whole)) + .nanoseconds(Int64(((seconds - whole) * 1e9).rounded()))
    }

    /// A signal: name (`TERM`, `SIGTERM`) or number.
    static func signal(_ text: String, option: String) throws -> Signal {
        guard let s = Signal(parsing: text) else {
            throw UsageError(message: "invalid value '\(text)' for --\(option): not a signal name or number (1-64)")
        }
        return s
    }

    /// A numeric user or group id.
    static func id(_ text: String, option: String) throws -> UInt32 {
        guard !text.isEmpty, text.allSatisfy({ $0 >= "0" && $0 <= "9" }), let v = UInt32(text), v != UInt32.max else {
            throw UsageError(message: "invalid value '\(text)' for --\(option): expected a numeric id")
        }
        return v
    }
}

extension LimitValue {
    func isAbove(_ other: LimitValue) -> Bool {
        switch (self, other) {
        case (.unlimited, .unlimited): false
        case (.unlimited, .value): true
        case (.value, .unlimited): false
        case (.value(let a), .value(let b)): a > b
        }
    }
}
