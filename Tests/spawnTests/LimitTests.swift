// Resource limits as the child sees them (the child is `spawn limits` itself).
// Root here lacks CAP_SYS_RESOURCE, so the tests lower limits rather than raise them.

import Foundation
import Testing

typealias Limits = [String: (soft: String, hard: String)]

/// `spawn limits` output (or the probe's `rlimit.NAME SOFT HARD` lines, see
/// CLI.limitsChild) by resource name.
func parseLimits(_ text: String) -> Limits {
    var out: Limits = [:]
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ").map(String.init)
        let name = f.first.map { $0.hasPrefix("rlimit.") ? String($0.dropFirst(7)) : $0 }
        if f.count == 3, let name { out[name] = (f[1], f[2]) }
    }
    return out
}

/// The limits a child of spawn sees with these options.
func childLimits(_ options: [String], sourceLocation: SourceLocation = #_sourceLocation) -> Limits? {
    let r = CLI.spawn(options + ["--"] + CLI.limitsChild)
    #expect(r.status == 0, "\(options): \(r)", sourceLocation: sourceLocation)
    guard r.status == 0 else { return nil }
    return parseLimits(r.stdoutString)
}

/// A number at most `cap` and at most the current hard limit (so it can be set).
func lowered(_ side: String, cap: UInt64) -> UInt64 {
    guard let v = UInt64(side) else { return cap }
    return min(v, cap)
}

@Suite("Resource limits")
struct LimitTests {
    let baseline: Limits = parseLimits(CLI.spawn(["limits"]).stdoutString)

    @Test("--nofile 100:200 --as 1G as seen by the child")
    func contractExample() throws {
        let limits = try #require(childLimits(["--nofile", "100:200", "--as", "1G"]))
        #expect(limits["nofile"]! == ("100", "200"))
        #expect(limits["as"]! == ("1073741824", "1073741824"))
    }

    @Test("N sets soft = hard")
    func single() throws {
        let limits = try #require(childLimits(["--nofile", "64"]))
        #expect(limits["nofile"]! == ("64", "64"))
    }

    @Test("SOFT: leaves the hard limit as it is")
    func softOnly() throws {
        let hard = try #require(baseline["nofile"]?.hard)
        let limits = try #require(childLimits(["--nofile", "50:"]))
        #expect(limits["nofile"]! == ("50", hard))
    }

    @Test(":HARD leaves the soft limit as it is")
    func hardOnly() throws {
        let stack = try #require(baseline["stack"])
        // Pick a hard limit at or above the current soft limit and at or below the current hard one.
        let soft = try #require(UInt64(stack.soft))
        let hard = stack.hard == "unlimited" ? max(soft, 64 << 20) : try #require(UInt64(stack.hard))
        let limits = try #require(childLimits(["--stack", ":\(hard)"]))
        #expect(limits["stack"]! == (stack.soft, "\(hard)"))
    }

    @Test("unlimited on either side")
    func unlimited() throws {
        // --fsize is unlimited here unless someone lowered it; skip otherwise (raising needs CAP_SYS_RESOURCE).
        let fsize = try #require(baseline["fsize"])
        try #require(fsize.hard == "unlimited", "fsize hard limit is not unlimited here")
        var limits = try #require(childLimits(["--fsize", "4096:unlimited"]))
        #expect(limits["fsize"]! == ("4096", "unlimited"))
        limits = try #require(childLimits(["--fsize", "unlimited"]))
        #expect(limits["fsize"]! == ("unlimited", "unlimited"))
        limits = try #require(childLimits(["--fsize", "unlimited:"]))
        #expect(limits["fsize"]! == ("unlimited", "unlimited"))
    }

    @Test("K, M, G, T suffixes are powers of 1024 on byte-sized limits")
    func suffixes() throws {
        // (The child is spawn itself, a Swift program: keep --data and --as large enough to load it.)
        var options: [String] = ["--fsize", "2K", "--memlock", "3M:4M", "--core", "0:1K"]
        var expected: [String: (String, String)] = [
            "fsize": ("2048", "2048"), "memlock": ("3145728", "4194304"), "core": ("0", "1024"),
        ]
        if baseline["data"]?.hard == "unlimited" {
            options += ["--data", "1G:2G"]
            expected["data"] = ("1073741824", "2147483648")
        }
        if baseline["rss"]?.hard == "unlimited" {
            options += ["--rss", "1T"]
            expected["rss"] = ("1099511627776", "1099511627776")
        }
        if baseline["as"]?.hard == "unlimited" {
            options += ["--as", "2G:1T"]
            expected["as"] = ("2147483648", "1099511627776")
        }
        let limits = try #require(childLimits(options))
        for (name, value) in expected {
            #expect(limits[name]! == value, "\(name)")
        }
    }

    @Test("every resource option is accepted and reaches the child")
    func everyResource() throws {
        func pick(_ name: String, _ want: UInt64) -> String {
            // Stay at or below the current hard limit so that no privilege is needed.
            "\(lowered(baseline[name]?.hard ?? "unlimited", cap: want))"
        }
        let wants: [(String, UInt64)] = [
            ("as", 8 << 30), ("core", 1 << 20), ("cpu", 3600), ("data", 8 << 30), ("fsize", 1 << 30),
            ("locks", 1000), ("memlock", 65536), ("msgqueue", 4096), ("nice", 0), ("nofile", 256),
            ("nproc", 4000), ("rss", 1 << 30), ("rtprio", 0), ("rttime", 5_000_000),
            ("sigpending", 1000), ("stack", 4 << 20),
        ]
        var options: [String] = []
        var expected: [String: String] = [:]
        for (name, want) in wants {
            let v = pick(name, want)
            options += ["--\(name)", v]
            expected[name] = v
        }
        let limits = try #require(childLimits(options))
        for (name, v) in expected {
            #expect(limits[name]?.soft == v && limits[name]?.hard == v, "\(name): \(String(describing: limits[name]))")
        }
    }

    @Test("--cpu is in seconds")
    func cpuSeconds() throws {
        let limits = try #require(childLimits(["--cpu", "7:9"]))
        #expect(limits["cpu"]! == ("7", "9"))
    }

    @Test("limits apply with --json too")
    func withJSON() throws {
        let r = CLI.spawn(["--json", "--nofile", "33:44", "--", CLI.spawnPath, "limits"])
        let report = try checkedReport(r)
        #expect(parseLimits(report.stdout)["nofile"]! == ("33", "44"))
    }

    @Test("--nofile is enforced: the child cannot open more files")
    func nofileEnforced() throws {
        let r = CLI.spawn(["--json", "--nofile", "10", CLI.python, "-c",
                           "import os\nfds=[]\ntry:\n  while True: fds.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e: print(e.errno, max(fds))"])
        let report = try checkedReport(r)
        let fields = report.stdout.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(fields.count == 2 && fields[0] == 24 && fields[1] <= 9, "EMFILE at the 10th descriptor: \(r)")
    }
}
