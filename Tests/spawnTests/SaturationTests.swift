// The CLI at the edges of its values (issue 11, defects 8 and 9): a signal
// offset or a duration past what the CLI takes is a usage error (exit 125),
// never a trap. On the main of 2026-12-03 `spawn --signal RTMIN+2147483647`
// died of SIGILL (exit 132) in Int32 arithmetic.
@testable import spawn
import AsyncSpawn
import Foundation
import Testing

@Suite("Saturation")
struct SaturationTests {
    @Test("signal offsets and numbers past every edge are usage errors", arguments: [
        "RTMIN+2147483647", "RTMAX--2147483648", "RTMAX-2147483648", "RTMIN+4294967296",
        "99999999999999999999", "-15", "-2147483648", "RTMIN+-1", "65",
    ])
    func hugeSignal(text: String) {
        let r = CLI.spawn(["--timeout", "5", "--signal", text, "/bin/true"])
        #expect(r.status == 125, "\(text): \(r)")
        #expect(r.stderrString.contains(text), "\(r)")
    }

    @Test("a duration over 999,999,999 s is a usage error; the maximum itself works", arguments: ["timeout", "kill-after"])
    func hugeDuration(option: String) {
        for text in ["1000000000", "999999999.5", "16666667m", "277778h", "9223372036854775807",
                     "99999999999999999999999999", "1" + String(repeating: "0", count: 400)] {
            let r = CLI.spawn(["--\(option)", text, "/bin/true"])
            #expect(r.status == 125, "--\(option) \(text): \(r)")
            #expect(r.stderrString.contains("--\(option)") && r.stderrString.contains(text), "\(r)")
        }
        let r = CLI.spawn(["--json", "--\(option)", "999999999", "/bin/true"])
        #expect(r.status == 0, "\(r)")
    }

    @Test("durations over the whole range of Double: parsed within the maximum or refused, never a trap")
    func durationRange() {
        var g = SeededGenerator(state: 11)
        for _ in 0..<20_000 {
            let exponent = Double(Int.random(in: -12...400, using: &g))
            let mantissa = Double(UInt32.random(in: 0 ... .max, using: &g)) / Double(UInt32.max)
            let value = mantissa * pow10(exponent)
            let text = value.isFinite ? String(format: "%.6f", value) : "1" + String(repeating: "9", count: 320)
            for unit in ["", "ms", "s", "m", "h"] {
                if let d = try? ValueParsing.duration(text + unit, option: "timeout") {
                    #expect(d >= .zero && d <= .seconds(999_999_999), "\(text + unit) -> \(d)")
                }
            }
        }
    }

    private func pow10(_ e: Double) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<Int(e) { r *= 10 } } else { for _ in 0..<Int(-e) { r /= 10 } }
        return r
    }
}
