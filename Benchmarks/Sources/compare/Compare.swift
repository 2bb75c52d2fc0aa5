import CFloor
import Foundation

/// `compare [--quick] [--scenario N[,N...]]`: AsyncSpawn against swift-subprocess,
/// Foundation's Process and a C floor, interleaved in rounds, in one run.
@main
struct Compare {
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--single" {
            await Single.main(Array(arguments.dropFirst()))
            return
        }
        var quick = false
        var selected: Set<Int> = []
        while !arguments.isEmpty {
            let a = arguments.removeFirst()
            switch a {
            case "--quick": quick = true
            case "--scenario":
                guard !arguments.isEmpty else { usage() }
                for part in arguments.removeFirst().split(separator: ",") {
                    guard let n = Int(part), (1...7).contains(n) else { usage() }
                    selected.insert(n)
                }
            case "-h", "--help": usage(0)
            default: usage()
            }
        }
        if selected.isEmpty { selected = Set(1...7) }
        let plan = Plan(quick: quick)
        do {
            try await Scenarios(plan: plan).run(selected)
        } catch {
            FileHandle.standardError.write("compare: \(error)\n".data(using: .utf8)!)
            exit(1)
        }
    }

    static func usage(_ code: Int32 = 2) -> Never {
        print("""
            usage: compare [--quick] [--scenario N[,N...]]
              scenarios: 1 spawn, 2 spawn with a 4 GiB parent, 3 500 children at once,
                         4 2 GiB streams, 5 lines, 6 round trip, 7 backpressure
            """)
        exit(code)
    }
}

/// The sizes and counts of one mode.
struct Plan: Sendable {
    let quick: Bool
    var spawnRounds: Int { quick ? 7 : 21 }
    var spawnOps: Int { quick ? 20 : 40 }
    var bigParentRounds: Int { quick ? 5 : 11 }
    var bigParentOps: Int { quick ? 10 : 30 }
    var bigParentBytes: Int { 4 << 30 }
    var concurrentRounds: Int { quick ? 2 : 7 }
    var concurrentCount: Int { 500 }
    var streamMiB: Int { quick ? 256 : 2048 }
    var streamRounds: Int { quick ? 3 : 7 }  // the noisiest scenario (bimodal: where the scheduler puts reader and writer)
    var lineCount: Int { quick ? 1_000_000 : 5_000_000 }
    var lineRounds: Int { quick ? 2 : 3 }
    var roundTripBytes: Int { 100_000_000 }
    var roundTripRounds: Int { quick ? 3 : 7 }
    var roundTripOps: Int { quick ? 1 : 2 }
    var backpressureMiB: Int { quick ? 128 : 1024 }
    var backpressureRounds: Int { quick ? 1 : 2 }
    var mode: String { quick ? "quick" : "full" }
}

struct Scenarios {
    let plan: Plan
    let R = Results.shared

    func run(_ selected: Set<Int>) async throws {
        let started = now()
        R.emit("## AsyncSpawn vs peers (\(plan.mode) mode)")
        R.emit("")
        R.emit("Every figure below was measured in this one run; ratios are taken within a round, then the median over rounds.")
        R.emit("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, Linux \(kernelRelease()); load average at the start: \(loadAverage()).")
        R.emit("")
        if selected.contains(1) || selected.contains(2) { try await spawn() }
        if selected.contains(2) { try await spawnBigParent() }
        if selected.contains(3) { try await concurrent() }
        if selected.contains(4) { try await streams() }
        if selected.contains(5) { try await lines() }
        if selected.contains(6) { try await roundTrip() }
        if selected.contains(7) { try await backpressure() }
        summary()
        R.emit("Total time of the run: \(fixed(now() - started, 1)) s; load average at the end: \(loadAverage()).")
        R.emit("")
        print("RATIO lines:")
        for l in R.ratioLines { print(l) }
    }

    // MARK: 1 and 2: spawn and wait

    func spawnImplementations() -> [Implementation] {
        let trueArgv = CArgv(["/bin/true"])
        let minimal = AsyncSpawnBench.minimal("/bin/true")
        let contained = AsyncSpawnBench.contained("/bin/true")
        let filtered = AsyncSpawnBench.filtered("/bin/true")
        return [
            Implementation(id: "asyncspawn", label: "AsyncSpawn, no options") { _ in
                try await AsyncSpawnBench.spawnAndWait(minimal)
            },
            Implementation(id: "asyncspawn-full", label: "AsyncSpawn, new session + 4 rlimits + die-with-parent + pidfd") { _ in
                try await AsyncSpawnBench.spawnAndWait(contained)
            },
            Implementation(id: "asyncspawn-seccomp", label: "AsyncSpawn, the same + seccomp no-network") { _ in
                try await AsyncSpawnBench.spawnAndWait(filtered)
            },
            Implementation(id: "subprocess", label: "swift-subprocess 1.0.2") { _ in
                try await SubprocessBench.spawnAndWait("/bin/true")
            },
            Implementation(id: "foundation", label: "Foundation Process") { _ in
                try FoundationBench.spawnAndWait("/bin/true")
            },
            Implementation(id: "c-setsid", label: "C posix_spawn + POSIX_SPAWN_SETSID + waitpid (context)") { _ in
                try FloorBench.spawnAndWaitInSession(trueArgv)
            },
            Implementation(id: "c-floor", label: "C posix_spawn + waitpid (floor)") { _ in
                try FloorBench.spawnAndWait(trueArgv)
            },
        ]
    }

    func spawn() async throws {
        let impls = spawnImplementations()
        let data = try await runRounds(impls, rounds: plan.spawnRounds, ops: plan.spawnOps, warmOps: plan.spawnOps) { id, n in
            if n != 1 { throw BenchError("\(id): spawn count \(n)") }
        }
        report(scenario: "spawn", title: "1. Spawn and wait for /bin/true, sequentially", impls, data,
               kind: .latency, rounds: plan.spawnRounds, ops: plan.spawnOps,
               note: "Stdio on /dev/null everywhere. Within a round the implementations take turns one spawn at a time; each round's figure is the median of an implementation's spawns. The `c-setsid` row is context: a child in a session of its own also gets an autogroup of its own (sched_autogroup), which changes its scheduling when the machine is busy.")
        R.ratio("spawn", "asyncspawn-full-vs-c-setsid", pairRatio(data, "asyncspawn-full", over: "c-setsid", throughput: false))
        print("")
    }

    func spawnBigParent() async throws {
        let impls = spawnImplementations()
        let t0 = now()
        guard let heap = cfloor_touch(plan.bigParentBytes) else { throw BenchError("cannot allocate 4 GiB") }
        let touchTime = now() - t0
        let rss = cfloor_status_kib("VmRSS")
        defer { cfloor_release(heap) }
        let data = try await runRounds(impls, rounds: plan.bigParentRounds, ops: plan.bigParentOps, warmOps: 3) { id, n in
            if n != 1 { throw BenchError("\(id): spawn count \(n)") }
        }
        let small = R.medians["spawn"] ?? [:]
        let smallRatios = R.ratios["spawn"] ?? [:]
        report(scenario: "spawn-4g", title: "2. Spawn and wait for /bin/true with 4 GiB of touched heap in this process", impls, data,
               kind: .latency, rounds: plan.bigParentRounds, ops: plan.bigParentOps,
               note: "4 GiB malloc'd and written page by page (\(fixed(touchTime, 1)) s; VmRSS \(rss / 1024) MiB during the scenario), freed (free + malloc_trim) afterwards. "
                   + "Last two columns: this scenario against scenario 1 of the same run, first as raw medians (which also move with the machine's load between the two scenarios), "
                   + "then normalized by the C floor (this scenario's ratio to the floor over scenario 1's ratio to the floor; posix_spawn's cost does not depend on the parent's size).",
               extraHeader: ["vs small parent, raw", "vs small parent, floor-normalized"]) { id in
            guard let s = small[id], let rounds = data[id] else { return ["–", "–"] }
            let raw = median(rounds) / s
            let normalized = smallRatios[id].map { ratios(data, id: id, floor: "c-floor", kind: .latency) / $0 }
            return [fixed(raw, 2) + "×", normalized.map { fixed($0, 2) + "×" } ?? "–"]
        }
        for impl in impls {
            guard let s = small[impl.id], let rounds = data[impl.id] else { continue }
            R.ratio("spawn-4g", "\(impl.id)-vs-small", median(rounds) / s)
        }
        for impl in impls where impl.id != "c-floor" {
            guard let s = smallRatios[impl.id] else { continue }
            R.ratio("spawn-4g", "\(impl.id)-vs-small-normalized", ratios(data, id: impl.id, floor: "c-floor", kind: .latency) / s)
        }
        print("")
    }

    // MARK: 3: 500 children at once

    func concurrent() async throws {
        let ids: [(String, String)] = [
            ("asyncspawn", "AsyncSpawn, no options (task group, `run`)"),
            ("asyncspawn-full", "AsyncSpawn, new session + 4 rlimits + die-with-parent"),
            ("subprocess", "swift-subprocess 1.0.2 (task group)"),
            ("foundation", "Foundation Process (terminationHandler)"),
            ("c-floor", "C posix_spawn loop, then waitpid each (floor)"),
        ]
        let (data, metrics) = try await isolatedRounds("concurrent-500", ids, rounds: plan.concurrentRounds, expected: plan.concurrentCount)
        let impls = ids.map { Implementation(id: $0.0, label: $0.1) { _ in 0 } }
        report(scenario: "concurrent-500", title: "3. \(plan.concurrentCount) × /bin/sleep 0.2 at once", impls, data,
               kind: .latency, rounds: plan.concurrentRounds, ops: 1,
               note: "Each operation runs in a fresh copy of this benchmark process (`compare --single`), so that thread counts and RSS are its alone; the wall time is measured inside it. Threads: the process's peak (sampled every 1 ms from /proc/self/task, the sampler not counted). RSS: VmHWM after resetting it (clear_refs 5) just before the operation, and its growth over VmRSS before the operation. Worst of the rounds.",
               extraHeader: ["peak threads (main + pool + other)", "peak RSS", "RSS growth"]) { id in
            let m = metrics[id] ?? []
            let threads = m.map { $0.peakThreads }.max() ?? 0
            let pool = m.map { $0.poolThreads }.max() ?? 0
            let other = m.map { $0.otherThreads }.max() ?? 0
            let hwm = m.map { $0.hwmKiB }.max() ?? 0
            let growth = m.map { $0.hwmKiB - $0.rssBeforeKiB }.max() ?? 0
            R.metric("concurrent-500", id, "peak-threads", Double(threads))
            R.metric("concurrent-500", id, "pool-threads", Double(pool))
            R.metric("concurrent-500", id, "other-threads", Double(other))
            R.metric("concurrent-500", id, "peak-rss-mib", Double(hwm) / 1024)
            R.metric("concurrent-500", id, "rss-growth-mib", Double(growth) / 1024)
            return ["\(threads) (\(pool) pool, \(other) other)", fixed(Double(hwm) / 1024, 1) + " MiB", fixed(Double(growth) / 1024, 1) + " MiB"]
        }
        R.emit("Threads at the peak, by name (one round):")
        R.emit("")
        for (id, _) in ids {
            let names = (metrics[id] ?? []).max(by: { $0.peakThreads < $1.peakThreads })?.names ?? ""
            R.emit("- `\(id)`: \(summarizeNames(names))")
        }
        R.emit("")
        for (id, _) in ids {
            if let m = R.metrics["concurrent-500"]?[id] {
                print("METRIC concurrent-500 \(id) peak-threads \(Int(m["peak-threads"]!)) other-threads \(Int(m["other-threads"]!)) peak-rss-mib \(fixed(m["peak-rss-mib"]!, 1)) rss-growth-mib \(fixed(m["rss-growth-mib"]!, 1))")
            }
        }
        print("")
    }

    // MARK: 4: streams

    func streams() async throws {
        let bytes = plan.streamMiB << 20
        let warmBytes = 32 << 20
        for (scenario, title, argv, warmArgv) in [
            ("stream-head", "4a. Reading \(plan.streamMiB) MiB from `head -c \(bytes) /dev/zero` (4–8 KiB writes)",
             ["/usr/bin/head", "-c", "\(bytes)", "/dev/zero"], ["/usr/bin/head", "-c", "\(warmBytes)", "/dev/zero"]),
            ("stream-dd", "4b. Reading \(plan.streamMiB) MiB from `dd if=/dev/zero bs=1M count=\(plan.streamMiB)` (1 MiB writes)",
             ["/bin/dd", "if=/dev/zero", "bs=1M", "count=\(plan.streamMiB)"], ["/bin/dd", "if=/dev/zero", "bs=1M", "count=32"]),
        ] {
            let cargv = CArgv(argv), cwarm = CArgv(warmArgv)
            let impls = [
                Implementation(id: "asyncspawn", label: "AsyncSpawn chunk sequence") { warm in
                    let a = warm ? warmArgv : argv
                    return try await AsyncSpawnBench.stream(a[0], Array(a.dropFirst()))
                },
                Implementation(id: "subprocess", label: "swift-subprocess sequence") { warm in
                    let a = warm ? warmArgv : argv
                    return try await SubprocessBench.stream(a[0], Array(a.dropFirst()))
                },
                Implementation(id: "c-floor", label: "C read loop, 64 KiB buffer (floor)") { warm in
                    try FloorBench.stream(warm ? cwarm : cargv)
                },
            ]
            let data = try await runRounds(impls, rounds: plan.streamRounds, ops: 1) { id, n in
                if n != bytes { throw BenchError("\(id): read \(n) bytes, expected \(bytes)") }
            }
            report(scenario: scenario, title: title, impls, data,
                   kind: .throughput(units: Double(bytes), unit: .gigabytes), rounds: plan.streamRounds, ops: 1,
                   note: "Each implementation reads the child's stdout to the end and counts the bytes (GB = 10⁹ bytes). Every child stays in this process's session (AsyncSpawn: `processGroup = .inherit`), so that all share one scheduling autogroup.")
            R.ratio(scenario, "asyncspawn-vs-subprocess", pairRatio(data, "asyncspawn", over: "subprocess", throughput: true))
            print("")
        }
    }

    // MARK: 5: lines

    func lines() async throws {
        let n = plan.lineCount
        let argv = ["/usr/bin/seq", "1", "\(n)"], warmArgv = ["/usr/bin/seq", "1", "500000"]
        let cargv = CArgv(argv), cwarm = CArgv(warmArgv)
        let impls = [
            Implementation(id: "asyncspawn", label: "AsyncSpawn `.lines`") { warm in
                try await AsyncSpawnBench.lines("/usr/bin/seq", Array((warm ? warmArgv : argv).dropFirst()))
            },
            Implementation(id: "subprocess", label: "swift-subprocess `.strings()`") { warm in
                try await SubprocessBench.lines("/usr/bin/seq", Array((warm ? warmArgv : argv).dropFirst()))
            },
            Implementation(id: "c-floor", label: "C read loop counting newlines (floor)") { warm in
                try FloorBench.lines(warm ? cwarm : cargv)
            },
        ]
        let data = try await runRounds(impls, rounds: plan.lineRounds, ops: 1) { id, count in
            if count != n { throw BenchError("\(id): \(count) lines, expected \(n)") }
        }
        report(scenario: "lines", title: "5. Lines: `seq 1 \(n)` through each library's line view", impls, data,
               kind: .throughput(units: Double(n), unit: .lines), rounds: plan.lineRounds, ops: 1,
               note: "Each Swift implementation makes a String per line; the floor only counts newlines.")
        R.ratio("lines", "asyncspawn-vs-subprocess", pairRatio(data, "asyncspawn", over: "subprocess", throughput: true))
        print("")
    }

    // MARK: 6: round trip

    func roundTrip() async throws {
        let size = plan.roundTripBytes
        var payload = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { payload[i] = UInt8(truncatingIfNeeded: i >> 12) }
        let data = payload
        let warmData = Array(payload[0..<(8 << 20)])
        let cat = CArgv(["/bin/cat"])
        let impls = [
            Implementation(id: "asyncspawn", label: "AsyncSpawn (stdin writer + chunk sequence)") { warm in
                try await AsyncSpawnBench.roundTrip(warm ? warmData : data)
            },
            Implementation(id: "subprocess", label: "swift-subprocess (`.array` input + sequence)") { warm in
                try await SubprocessBench.roundTrip(warm ? warmData : data)
            },
            Implementation(id: "c-floor", label: "C poll() writer/reader (floor)") { warm in
                try FloorBench.roundTrip(cat, warm ? warmData : data)
            },
        ]
        let result = try await runRounds(impls, rounds: plan.roundTripRounds, ops: plan.roundTripOps) { id, n in
            if n != size { throw BenchError("\(id): round trip returned \(n) bytes, expected \(size)") }
        }
        report(scenario: "roundtrip", title: "6. Round trip: \(size / 1_000_000) MB through `cat` (stdin written while stdout is read)", impls, result,
               kind: .throughput(units: Double(size), unit: .gigabytes), rounds: plan.roundTripRounds, ops: plan.roundTripOps)
    }

    // MARK: 7: backpressure

    func backpressure() async throws {
        let ids: [(String, String)] = [
            ("asyncspawn", "AsyncSpawn chunk sequence, 1 ms sleep per chunk"),
            ("subprocess", "swift-subprocess sequence, 1 ms sleep per chunk"),
            ("c-floor", "C 64 KiB read, 1 ms sleep per read (floor)"),
        ]
        let bytes = plan.backpressureMiB << 20
        let (data, metrics) = try await isolatedRounds("backpressure", ids, rounds: plan.backpressureRounds, expected: bytes)
        let impls = ids.map { Implementation(id: $0.0, label: $0.1) { _ in 0 } }
        report(scenario: "backpressure", title: "7. Backpressure: `head -c \(bytes) /dev/zero` read one chunk per millisecond", impls, data,
               kind: .latency, rounds: plan.backpressureRounds, ops: 1,
               note: "Fresh process per operation, as in scenario 3. RSS growth: VmHWM (reset just before) minus VmRSS before the operation; worst of the rounds. The time column is only context: a slow consumer is slow by design.",
               extraHeader: ["peak RSS growth", "peak RSS", "peak threads"]) { id in
            let m = metrics[id] ?? []
            let growth = m.map { $0.hwmKiB - $0.rssBeforeKiB }.max() ?? 0
            let hwm = m.map { $0.hwmKiB }.max() ?? 0
            let threads = m.map { $0.peakThreads }.max() ?? 0
            R.metric("backpressure", id, "rss-growth-mib", Double(growth) / 1024)
            return [fixed(Double(growth) / 1024, 1) + " MiB", fixed(Double(hwm) / 1024, 1) + " MiB", "\(threads)"]
        }
        for (id, _) in ids {
            if let g = R.metrics["backpressure"]?[id]?["rss-growth-mib"] {
                print("METRIC backpressure \(id) rss-growth-mib \(fixed(g, 1))")
            }
        }
        print("")
    }

    // MARK: helpers

    /// Per-round ratio of two implementations, then the median.
    func pairRatio(_ data: RoundMedians, _ a: String, over b: String, throughput: Bool) -> Double {
        let x = data[a]!, y = data[b]!
        var r: [Double] = []
        for i in 0..<min(x.count, y.count) { r.append(throughput ? y[i] / x[i] : x[i] / y[i]) }
        return median(r)
    }

    /// Rounds where each operation is a fresh `compare --single` process.
    func isolatedRounds(_ scenario: String, _ ids: [(String, String)], rounds: Int, expected: Int) async throws
        -> (RoundMedians, [String: [SingleResult]])
    {
        var data: RoundMedians = [:]
        var metrics: [String: [SingleResult]] = [:]
        for round in 0...rounds {
            for (id, _) in ids {
                let r = try runSingle(scenario, id, warm: round == 0)
                if round == 0 { continue }
                guard r.count == expected else {
                    throw BenchError("\(scenario) \(id): count \(r.count), expected \(expected)")
                }
                data[id, default: []].append(r.seconds)
                metrics[id, default: []].append(r)
            }
        }
        return (data, metrics)
    }

    func runSingle(_ scenario: String, _ id: String, warm: Bool) throws -> SingleResult {
        var exe = [CChar](repeating: 0, count: 4096)
        guard cfloor_self_exe(&exe, exe.count) == 0 else { throw BenchError("cannot find /proc/self/exe") }
        var args = [string(exe), "--single", scenario, id]
        if plan.quick { args.append("--quick") }
        if warm { args.append("--warm") }
        let argv = CArgv(args)
        var fd: Int32 = -1
        let pid = cfloor_spawn_capture(argv.pointer, &fd)
        guard pid > 0 else { throw BenchError("cannot start \(args): \(pid)") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fd)
        let status = cfloor_wait(pid)
        let text = String(decoding: output, as: UTF8.self)
        guard status == 0, let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SINGLE ") }),
              let result = SingleResult(parsing: String(line))
        else { throw BenchError("\(scenario) \(id): the single run failed (status \(status)): \(text)") }
        return result
    }

    func summarizeNames(_ names: String) -> String {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for n in names.split(separator: ",").map(String.init) {
            if counts[n] == nil { order.append(n) }
            counts[n, default: 0] += 1
        }
        return order.map { counts[$0]! > 1 ? "\($0) ×\(counts[$0]!)" : $0 }.joined(separator: ", ")
    }

    // MARK: the targets of issue 4

    func summary() {
        let ratios = R.ratios
        var rows: [(String, String, String, Bool?)] = []
        func row(_ target: String, _ measured: String, _ met: Bool?) { rows.append((target, measured, met == nil ? "–" : (met! ? "met" : "missed"), met)) }
        if let s = ratios["spawn"] {
            if let v = s["asyncspawn-full"] { row("1. session + rlimits + pdeathsig + pidfd ≤ 1.10× C", fixed(v, 2) + "×", v <= 1.10) }
            if let v = s["asyncspawn-seccomp"] { row("1. with a seccomp preset ≤ 1.30× C", fixed(v, 2) + "×", v <= 1.30) }
            if let v = s["asyncspawn"] { row("1. (no options, for reference)", fixed(v, 2) + "×", nil) }
        }
        if let s = ratios["spawn-4g"] {
            for id in ["asyncspawn", "asyncspawn-full", "asyncspawn-seccomp"] {
                if let v = s["\(id)-vs-small"], let n = s["\(id)-vs-small-normalized"] {
                    let floor = s["c-floor-vs-small"].map { ", the C floor itself " + fixed($0, 2) + "×" } ?? ""
                    row("2. `\(id)` with a 4 GiB parent ≤ 1.10× its small-parent figure (floor-normalized; raw in brackets)",
                        fixed(n, 2) + "× (raw " + fixed(v, 2) + "×" + floor + ")", n <= 1.10)
                }
            }
        }
        if let s = ratios["concurrent-500"], let m = R.metrics["concurrent-500"] {
            let pool = ProcessInfo.processInfo.activeProcessorCount
            for id in ["asyncspawn", "asyncspawn-full"] {
                guard let v = s[id], let mm = m[id] else { continue }
                row("3. `\(id)` wall ≤ 1.15× the C loop", fixed(v, 2) + "×", v <= 1.15)
                let threads = Int(mm["peak-threads"]!)
                let own = Int(mm["other-threads"]!)
                row("3. `\(id)` ≤ 2 threads of its own beyond Swift's pool (\(pool) cores)", "\(threads) peak: main + \(Int(mm["pool-threads"]!)) pool + \(own) other", own <= 2)
                let rss = mm["rss-growth-mib"]!
                row("3. `\(id)` peak RSS ≤ 20 MiB (growth over the pre-run RSS)", fixed(rss, 1) + " MiB (absolute VmHWM " + fixed(mm["peak-rss-mib"]!, 1) + " MiB)", rss <= 20)
            }
        }
        for sc in ["stream-head", "stream-dd"] {
            if let v = ratios[sc]?["asyncspawn"] { row("4. `\(sc)` ≥ 1.0× the C 64 KiB loop", fixed(v, 2) + "×", v >= 1.0) }
        }
        if let v = ratios["stream-head"]?["asyncspawn-vs-subprocess"] { row("4. `stream-head` ≥ 1.7× swift-subprocess", fixed(v, 2) + "×", v >= 1.7) }
        if let v = ratios["lines"]?["asyncspawn-vs-subprocess"] { row("5. lines ≥ 2× swift-subprocess", fixed(v, 2) + "×", v >= 2.0) }
        if let v = ratios["roundtrip"]?["asyncspawn"] { row("6. round trip (no target) vs C", fixed(v, 2) + "×", nil) }
        if let g = R.metrics["backpressure"]?["asyncspawn"]?["rss-growth-mib"] {
            row("7. backpressure: peak RSS grows < 16 MiB", fixed(g, 1) + " MiB", g < 16)
        }
        guard !rows.isEmpty else { return }
        R.emit("### Issue 4's targets")
        R.emit("")
        R.emit("| target | measured | |")
        R.emit("|---|---:|---|")
        for r in rows { R.emit("| \(r.0) | \(r.1) | \(r.2) |") }
        R.emit("")
    }
}

func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: &u.release) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

/// What one `compare --single` process reports.
struct SingleResult {
    var seconds: Double
    var count: Int
    var peakThreads: Int
    var baseThreads: Int
    var hwmKiB: Int
    var rssBeforeKiB: Int
    var names: String

    /// Threads at the peak that belong to Swift's / Dispatch's pools (their
    /// names hold "qos"), and the others apart from the main thread.
    var poolThreads: Int { names.split(separator: ",").filter { $0.contains("qos") }.count }
    var otherThreads: Int { max(names.split(separator: ",").filter { !$0.contains("qos") }.count - 1, 0) }

    init?(parsing line: String) {
        var fields: [String: String] = [:]
        for part in line.split(separator: " ").dropFirst() {
            guard let eq = part.firstIndex(of: "=") else { continue }
            fields[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        guard let s = fields["seconds"].flatMap(Double.init), let c = fields["count"].flatMap(Int.init),
              let p = fields["peak_threads"].flatMap(Int.init), let b = fields["base_threads"].flatMap(Int.init),
              let h = fields["hwm_kib"].flatMap(Int.init), let r = fields["rss_before_kib"].flatMap(Int.init)
        else { return nil }
        seconds = s; count = c; peakThreads = p; baseThreads = b; hwmKiB = h; rssBeforeKiB = r
        names = fields["names"] ?? ""
    }
}

/// `compare --single <scenario> <implementation> [--quick] [--warm]`: one
/// operation in this fresh process, measured here, reported on one line.
@MainActor
enum Single {
    static func main(_ arguments: [String]) async {
        guard arguments.count >= 2 else { Compare.usage() }
        let scenario = arguments[0], id = arguments[1]
        let plan = Plan(quick: arguments.contains("--quick"))
        let warm = arguments.contains("--warm")
        do {
            let operation: () async throws -> Int
            switch scenario {
            case "concurrent-500":
                let n = plan.concurrentCount
                switch id {
                case "asyncspawn":
                    let c = AsyncSpawnBench.minimal("/bin/sleep", ["0.2"])
                    operation = { try await AsyncSpawnBench.concurrent(c, count: n) }
                case "asyncspawn-full":
                    let c = AsyncSpawnBench.contained("/bin/sleep", ["0.2"])
                    operation = { try await AsyncSpawnBench.concurrent(c, count: n) }
                case "subprocess":
                    operation = { try await SubprocessBench.concurrent("/bin/sleep", ["0.2"], count: n) }
                case "foundation":
                    operation = { try await FoundationBench.concurrent("/bin/sleep", ["0.2"], count: n) }
                case "c-floor":
                    let argv = CArgv(["/bin/sleep", "0.2"])
                    operation = { try FloorBench.concurrent(argv, count: n) }
                default: throw BenchError("unknown implementation \(id)")
                }
            case "backpressure":
                let bytes = warm ? 8 << 20 : plan.backpressureMiB << 20
                let args = ["-c", "\(bytes)", "/dev/zero"]
                switch id {
                case "asyncspawn": operation = { try await AsyncSpawnBench.slowConsumer("/usr/bin/head", args) }
                case "subprocess": operation = { try await SubprocessBench.slowConsumer("/usr/bin/head", args) }
                case "c-floor":
                    let argv = CArgv(["/usr/bin/head"] + args)
                    operation = { try FloorBench.slowConsumer(argv) }
                default: throw BenchError("unknown implementation \(id)")
                }
            case "stream-head", "stream-dd", "lines-once":
                // For `strace -f -c`: one stream of `--mib N` MiB (default 256), or
                // `seq 1 N` for lines-once (`--count N`, default 1000000).
                let mib = arguments.firstIndex(of: "--mib").flatMap { Int(arguments[$0 + 1]) } ?? 256
                let lines = arguments.firstIndex(of: "--count").flatMap { Int(arguments[$0 + 1]) } ?? 1_000_000
                let argv: [String]
                switch scenario {
                case "stream-head": argv = ["/usr/bin/head", "-c", "\(mib << 20)", "/dev/zero"]
                case "stream-dd": argv = ["/bin/dd", "if=/dev/zero", "bs=1M", "count=\(mib)"]
                default: argv = ["/usr/bin/seq", "1", "\(lines)"]
                }
                let rest = Array(argv.dropFirst())
                let isLines = scenario == "lines-once"
                switch id {
                case "asyncspawn":
                    operation = { isLines ? try await AsyncSpawnBench.lines(argv[0], rest) : try await AsyncSpawnBench.stream(argv[0], rest) }
                case "subprocess":
                    operation = { isLines ? try await SubprocessBench.lines(argv[0], rest) : try await SubprocessBench.stream(argv[0], rest) }
                case "c-floor":
                    let c = CArgv(argv)
                    operation = { isLines ? try FloorBench.lines(c) : try FloorBench.stream(c) }
                default: throw BenchError("unknown implementation \(id)")
                }
            case "spawn-loop":
                // For `strace -f -c`: N sequential spawns of one implementation
                // (`--count N`, default 1000), nothing else.
                let n = arguments.firstIndex(of: "--count").flatMap { Int(arguments[$0 + 1]) } ?? 1000
                let spawnOnce: () async throws -> Int
                switch id {
                case "asyncspawn":
                    let c = AsyncSpawnBench.minimal("/bin/true")
                    spawnOnce = { try await AsyncSpawnBench.spawnAndWait(c) }
                case "asyncspawn-full":
                    let c = AsyncSpawnBench.contained("/bin/true")
                    spawnOnce = { try await AsyncSpawnBench.spawnAndWait(c) }
                case "asyncspawn-seccomp":
                    let c = AsyncSpawnBench.filtered("/bin/true")
                    spawnOnce = { try await AsyncSpawnBench.spawnAndWait(c) }
                case "subprocess": spawnOnce = { try await SubprocessBench.spawnAndWait("/bin/true") }
                case "foundation": spawnOnce = { try FoundationBench.spawnAndWait("/bin/true") }
                case "c-floor":
                    let argv = CArgv(["/bin/true"])
                    spawnOnce = { try FloorBench.spawnAndWait(argv) }
                case "c-setsid":
                    let argv = CArgv(["/bin/true"])
                    spawnOnce = { try FloorBench.spawnAndWaitInSession(argv) }
                default: throw BenchError("unknown implementation \(id)")
                }
                operation = {
                    var done = 0
                    for _ in 0..<n { done += try await spawnOnce() }
                    return done
                }
            default: throw BenchError("unknown scenario \(scenario)")
            }
            cfloor_trim()
            let base = Int(cfloor_thread_count())
            _ = cfloor_reset_hwm()
            let rssBefore = cfloor_status_kib("VmRSS")
            let sampling = !["spawn-loop", "stream-head", "stream-dd", "lines-once"].contains(scenario)
            if sampling { _ = cfloor_sampler_start(1000) }
            let t0 = now()
            let count = try await operation()
            let t1 = now()
            var names = [CChar](repeating: 0, count: 4096)
            let peak = sampling ? Int(cfloor_sampler_stop(&names, names.count)) : 0
            let hwm = cfloor_status_kib("VmHWM")
            let nameList = string(names).replacingOccurrences(of: " ", with: "_")
            print("SINGLE seconds=\(t1 - t0) count=\(count) peak_threads=\(peak) base_threads=\(base) hwm_kib=\(hwm) rss_before_kib=\(rssBefore) names=\(nameList)")
        } catch {
            print("ERROR \(error)")
            exit(1)
        }
    }
}
