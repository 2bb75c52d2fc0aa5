// Property-based tests of the parsers a user's input reaches: limit values,
// durations, signal names, ids, system-call names. Random inputs (seeded, so a
// failure reproduces) must never crash, and every rejection names the option
// and the bad value; generated valid inputs must parse to what they mean.
@testable import spawn
import AsyncSpawn
import Testing

/// SplitMix64: small, seeded, reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random strings biased towards the parsers' alphabet and edge cases.
func randomInput(_ g: inout SeededGenerator) -> String {
    let alphabet = Array("0123456789:KMGTkmgtunlimitedsmh.-+ \u{0}\u{7f}xé9999999999999999999999")
    let pieces = ["unlimited", ":", "::", "K", "ms", "s", "m", "h", "-", ".", "18446744073709551615",
                  "18446744073709551616", "0", "1", "SIG", "TERM", "RTMIN+", "RTMAX-", "+", " ", ""]
    var s = ""
    for _ in 0..<Int.random(in: 0...8, using: &g) {
        if Bool.random(using: &g) {
            s += pieces.randomElement(using: &g)!
        } else {
            s.append(alphabet.randomElement(using: &g)!)
        }
    }
    return s
}

@Suite("Parser properties")
struct ParserPropertyTests {
    @Test("limit values: never crash; errors name the option and the value", arguments: [true, false])
    func limitFuzz(bytes: Bool) {
        var g = SeededGenerator(state: bytes ? 1 : 2)
        for _ in 0..<20_000 {
            let input = randomInput(&g)
            do {
                let limit = try ValueParsing.limit(input, option: "as", bytes: bytes)
                #expect(limit.soft != nil || limit.hard != nil, "\(input.debugDescription)")
                if let s = limit.soft, let h = limit.hard { #expect(!s.isAbove(h), "\(input.debugDescription)") }
            } catch let e as UsageError {
                #expect(e.message.contains("--as") && e.message.contains("'\(input)'"), "\(e.message)")
            } catch {
                Issue.record("unexpected error \(error) for \(input.debugDescription)")
            }
        }
    }

    @Test("valid limit values parse to what they mean")
    func limitRoundTrip() throws {
        var g = SeededGenerator(state: 3)
        let suffixes: [(String, UInt64)] = [("", 1), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)]
        for _ in 0..<5_000 {
            let soft = UInt64.random(in: 0...100_000, using: &g)
            let hard = soft + UInt64.random(in: 0...100_000, using: &g)
            let (suffix, scale) = suffixes.randomElement(using: &g)!
            let form = Int.random(in: 0..<5, using: &g)
            let text: String
            let expected: Limit
            switch form {
            case 0: text = "\(soft)\(suffix)"; expected = Limit(.value(soft * scale))
            case 1: text = "\(soft)\(suffix):\(hard)\(suffix)"; expected = Limit(soft: .value(soft * scale), hard: .value(hard * scale))
            case 2: text = "\(soft)\(suffix):"; expected = Limit(soft: .value(soft * scale), hard: nil)
            case 3: text = ":\(hard)\(suffix)"; expected = Limit(soft: nil, hard: .value(hard * scale))
            default: text = "\(soft)\(suffix):unlimited"; expected = Limit(soft: .value(soft * scale), hard: .unlimited)
            }
            #expect(try ValueParsing.limit(text, option: "stack", bytes: true) == expected, "\(text)")
            if suffix.isEmpty {
                #expect(try ValueParsing.limit(text, option: "nofile", bytes: false) == expected, "\(text)")
            } else {
                #expect(throws: UsageError.self) { try ValueParsing.limit(text, option: "nofile", bytes: false) }
            }
        }
    }

    @Test("durations: never crash; errors name the option and the value; valid ones are exact")
    func durationFuzz() throws {
        var g = SeededGenerator(state: 4)
        for _ in 0..<20_000 {
            let input = randomInput(&g)
            do {
                let d = try ValueParsing.duration(input, option: "timeout")
                #expect(d >= .zero, "\(input.debugDescription)")
            } catch let e as UsageError {
                #expect(e.message.contains("--timeout") && e.message.contains("'\(input)'"), "\(e.message)")
            }
        }
        for _ in 0..<5_000 {
            let millis = Int64.random(in: 0...10_000_000, using: &g)
            #expect(try ValueParsing.duration("\(millis)ms", option: "t") == .milliseconds(millis))
            let seconds = Int64.random(in: 0...100_000, using: &g)
            #expect(try ValueParsing.duration("\(seconds)", option: "t") == .seconds(seconds))
            #expect(try ValueParsing.duration("\(seconds)s", option: "t") == .seconds(seconds))
            #expect(try ValueParsing.duration("\(seconds)m", option: "t") == .seconds(seconds * 60))
        }
        #expect(try ValueParsing.duration("1.5", option: "t") == .milliseconds(1500))
        #expect(try ValueParsing.duration("0.25h", option: "t") == .seconds(900))
    }

    @Test("signal names and numbers: never crash; every name the table knows round-trips")
    func signalFuzz() throws {
        var g = SeededGenerator(state: 5)
        for _ in 0..<20_000 {
            let input = randomInput(&g)
            do {
                let s = try ValueParsing.signal(input, option: "signal")
                #expect((1...64).contains(s.rawValue), "\(input.debugDescription)")
            } catch let e as UsageError {
                #expect(e.message.contains("--signal") && e.message.contains("'\(input)'"), "\(e.message)")
            }
        }
        for n in Int32(1)...64 {
            let s = try ValueParsing.signal("\(n)", option: "signal")
            #expect(s.rawValue == n)
            if Int32(s.name) == nil {  // 32 and 33 are glibc's own: known by number only
                #expect(try ValueParsing.signal(s.name, option: "signal") == s, "\(s.name)")
                #expect(try ValueParsing.signal("SIG" + s.name, option: "signal") == s, "\(s.name)")
                #expect(try ValueParsing.signal(s.name.lowercased(), option: "signal") == s, "\(s.name)")
            }
        }
        #expect(throws: UsageError.self) { try ValueParsing.signal("0", option: "signal") }
        #expect(throws: UsageError.self) { try ValueParsing.signal("65", option: "signal") }
    }

    @Test("ids: never crash; errors name the option and the value")
    func idFuzz() {
        var g = SeededGenerator(state: 6)
        for _ in 0..<20_000 {
            let input = randomInput(&g)
            do {
                _ = try ValueParsing.id(input, option: "uid")
            } catch let e as UsageError {
                #expect(e.message.contains("--uid") && e.message.contains("'\(input)'"), "\(e.message)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test("system-call names for seccomp rules: unknown ones are a typed error naming them")
    func syscallNameFuzz() {
        var g = SeededGenerator(state: 7)
        let known = ["read", "write", "socket", "clone3", "mkdir", "ptrace"]
        for _ in 0..<2_000 {
            var name = known.randomElement(using: &g)!
            if Bool.random(using: &g) { name += randomInput(&g) }
            do {
                _ = try SeccompFilter.deny([name]).compile()
                #expect(SeccompFilter.isKnownSyscall(name), "\(name.debugDescription) compiled but is unknown")
            } catch {
                #expect(error.code == .seccomp)
                #expect(error.message.contains(name.debugDescription.dropFirst().dropLast()) || error.message.contains(name), "\(error.message)")
                #expect(!SeccompFilter.isKnownSyscall(name))
            }
        }
    }
}
