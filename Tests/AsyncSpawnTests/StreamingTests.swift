// The streaming form: output chunks and lines, the stdin writer, signals,
// terminate, and streams that outlive the child.

import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct StreamingTests {
    /// 50 MB through `cat` with the writer and the reader running at once: no
    /// deadlock (each side alone would fill its pipe), every byte arrives in order.
    @Test func fiftyMegabytesThroughCat() async throws {
        // Under AddressSanitizer, 4 MB: ASan is there for memory errors in the
        // stream and teardown paths, and a few MB through the grown (1 MiB) pipe
        // exercise every path (odd chunk sizes, pipe growth, hand-over without
        // copy). (The half minute this test took under ASan was the test's own
        // hashing, one malloc per byte in a debug build: see FNV1a.)
        let total = isAddressSanitized ? 4 * 1_000_000 : 50 * 1_000_000
        var config = Probe.config("cat")
        config.standardInput = .pipe
        let ((sentHash, receivedHash, received), report) = try await withDeadline(TestTime.hang, "\(total / 1_000_000) MB through cat") { [config] in
            try await withChildProcess(config) { child -> (UInt64, UInt64, Int) in
                async let sent: UInt64 = {
                    var hash = FNV1a()
                    var generator = SplitMix64(seed: 42)
                    var remaining = total
                    while remaining > 0 {
                        let n = min(remaining, 1 << 20 - 13)  // odd sizes on purpose
                        var chunk = [UInt8](repeating: 0, count: n)
                        for i in 0..<n { chunk[i] = UInt8(truncatingIfNeeded: generator.next()) }
                        hash.add(chunk)
                        try await child.standardInput.write(chunk)
                        remaining -= n
                    }
                    child.standardInput.finish()
                    return hash.value
                }()
                async let got: (UInt64, Int) = {
                    var hash = FNV1a()
                    var count = 0
                    for try await chunk in child.standardOutput {
                        hash.add(chunk)
                        count += chunk.count
                    }
                    return (hash.value, count)
                }()
                let s = try await sent
                let (h, c) = try await got
                return (s, h, c)
            }
        }
        #expect(received == total)
        #expect(receivedHash == sentHash)
        #expect(report.termination == .exited(0))
    }

    @Test func runWithInput() async throws {
        let input = Array("line one\nline two\n".utf8) + [0, 255, 1]
        let result = try await run(Probe.config("cat"), input: input)
        #expect(result.standardOutput == input)
        #expect(result.termination == .exited(0))
    }

    /// Input larger than a pipe, given to `run`.
    @Test func runWithLargeInput() async throws {
        let input = probePattern(3 << 20)
        let result = try await withDeadline(TestTime.hang) { try await run(Probe.config("cat"), input: input) }
        #expect(result.standardOutput.count == input.count)
        #expect(result.standardOutput == input)
    }

    @Test func stdinWriterWithStrings() async throws {
        var config = Probe.config("cat")
        config.standardInput = .pipe
        let (output, report) = try await withChildProcess(config) { child -> [UInt8] in
            try await child.standardInput.write("hello ")
            try await child.standardInput.write("wörld ✓\n")
            try await child.standardInput.write(Array("bytes".utf8))
            child.standardInput.finish()
            return try await child.standardOutput.collect()
        }
        #expect(String(decoding: output, as: UTF8.self) == "hello wörld ✓\nbytes")
        #expect(report.termination == .exited(0))
    }

    /// Writing after the child closed its stdin throws brokenPipe (not SIGPIPE).
    @Test func writeToAClosedStdin() async throws {
        var config = Probe.config("exit", "0")
        config.standardInput = .pipe
        let (error, _) = try await withChildProcess(config) { child -> SpawnError? in
            _ = try await child.wait()
            do {
                for _ in 0..<100 { try await child.standardInput.write(probePattern(1 << 16)) }
                return nil
            } catch let e as SpawnError {
                return e
            }
        }
        #expect(error?.code == .brokenPipe)
    }

    @Test func writerWithoutAPipe() async throws {
        let (error, _) = try await withChildProcess(Probe.config("exit", "0")) { child -> SpawnError? in
            do {
                try await child.standardInput.write("x")
                return nil
            } catch let e as SpawnError {
                return e
            }
        }
        #expect(error != nil)
    }

    @Test func lines() async throws {
        let (lines, _) = try await withChildProcess(Probe.config("print-lines", "one", "", "three", "last")) { child in
            var lines: [String] = []
            for try await line in child.standardOutput.lines { lines.append(line) }
            return lines
        }
        // The last line has no newline and is still delivered; the empty line too.
        #expect(lines == ["one", "", "three", "last"])
    }

    /// Lines across chunk boundaries: 640 KiB of 63-letter lines.
    @Test func manyLines() async throws {
        let total = 640 * 1024
        var config = Probe.config("write", "\(total)")
        config.maximumLineLength = 63
        let (result, _) = try await withChildProcess(config) { child -> (Int, Bool) in
            var count = 0
            var allGood = true
            let expected = String(decoding: probePattern(63), as: UTF8.self)
            for try await line in child.standardOutput.lines {
                count += 1
                if line != expected { allGood = false }
            }
            return (count, allGood)
        }
        #expect(result.0 == total / 64)
        #expect(result.1)
    }

    @Test func lineTooLong() async throws {
        var config = Probe.config("write", "200")
        config.maximumLineLength = 10
        let error = await expectSpawnError {
            _ = try await withChildProcess(config) { child in
                for try await _ in child.standardOutput.lines {}
            }
        }
        #expect(error?.code == .lineTooLong)
    }

    /// An over-long last line without a newline is caught too.
    @Test func lineTooLongWithoutNewline() async throws {
        var config = Probe.config("print-lines", "short", String(repeating: "x", count: 50))
        config.maximumLineLength = 20
        let (lines, error) = await {
            var lines: [String] = []
            do {
                _ = try await withChildProcess(config) { child in
                    for try await line in child.standardOutput.lines { lines.append(line) }
                }
                return (lines, nil as SpawnError?)
            } catch {
                return (lines, error as? SpawnError)
            }
        }()
        #expect(lines == ["short"])
        #expect(error?.code == .lineTooLong)
    }

    /// Output chunks concatenate to exactly what the child wrote.
    @Test func chunksAreComplete() async throws {
        let total = 1_000_003
        let (bytes, _) = try await withChildProcess(Probe.config("write", "\(total)")) { child -> [UInt8] in
            var all: [UInt8] = []
            for try await chunk in child.standardOutput {
                #expect(!chunk.isEmpty)
                all += chunk
            }
            return all
        }
        #expect(bytes == probePattern(total))
    }

    /// `send` delivers a signal to the child.
    @Test func sendSignal() async throws {
        let (termination, report) = try await withChildProcess(Probe.config("sleep", TestTime.childSleep)) { child -> Termination in
            try child.send(.user1)
            return try await child.wait()
        }
        #expect(termination == .signaled(.user1))
        #expect(report.termination == .signaled(.user1))
        #expect(report.outcome == .signaled)
    }

    /// `sendToGroup` reaches the grandchild too.
    @Test func sendToGroup() async throws {
        let (grandchild, report) = try await withChildProcess(Probe.config("fork-sleep", TestTime.childSleep)) { child -> Int32 in
            var lines = child.standardOutput.lines.makeAsyncIterator()
            let line = try await lines.next() ?? ""
            let pid = Int32(line.dropFirst("grandchild ".count)) ?? -1
            try child.sendToGroup(.user2)
            _ = try await child.wait()
            return pid
        }
        #expect(report.termination == .signaled(.user2))
        #expect(grandchild > 0)
        #expect(Proc.isDead(grandchild))
    }

    /// terminate() ends the child with the teardown's first signal.
    @Test func terminate() async throws {
        let started = ContinuousClock.now
        let (termination, report) = try await withChildProcess(Probe.config("sleep", TestTime.childSleep)) { child -> Termination in
            await child.terminate()
            return try await child.wait()
        }
        #expect(termination == .signaled(.terminate))
        #expect(report.termination == .signaled(.terminate))
        #expect(ContinuousClock.now - started < TestTime.endsBy(.zero))  // far below the child's lifetime
    }

    /// A stopped child is continued after the teardown's first signal, so it
    /// ends by that signal at once instead of waiting out the grace for SIGKILL.
    /// The grace is twice the slack: a teardown that waited it out would fail
    /// the bound below, and still end (by SIGKILL) within the hang detector.
    @Test func terminateAStoppedChild() async throws {
        var config = Probe.config("sleep", TestTime.childSleep)
        config.teardown = Teardown(signal: .terminate, grace: TestTime.slack * 2)
        let started = ContinuousClock.now
        let (_, report) = try await withDeadline(TestTime.hang) { [config] in
            try await withChildProcess(config) { child in
                try child.send(.stop)
                // Wait (bounded) until the kernel shows it stopped.
                let deadline = ContinuousClock.now + TestTime.hang
                while Proc.state(child.processID) != "T" && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(2))
                }
                #expect(Proc.state(child.processID) == "T")
                await child.terminate()
            }
        }
        #expect(report.termination == .signaled(.terminate))
        #expect(ContinuousClock.now - started < TestTime.endsBy(.zero))  // below the grace
    }

    /// terminate() and send() after the child is gone neither hang nor crash.
    @Test func terminateAndSendAfterExit() async throws {
        let (sendError, _) = try await withDeadline(TestTime.hang) {
            try await withChildProcess(Probe.config("exit", "0")) { child -> (any Error)? in
                _ = try await child.wait()
                await child.terminate()
                do {
                    try child.send(.user1)
                    return nil
                } catch {
                    return error
                }
            }
        }
        #expect(sendError != nil, "a signal to a reaped child should fail, not reach a reused pid")
    }

    @Test func processGroupID() async throws {
        let (ids, _) = try await withChildProcess(Probe.config("exit", "0")) { child in
            (child.processID, child.processGroupID)
        }
        #expect(ids.1 == ids.0)
        var config = Probe.config("exit", "0")
        config.processGroup = .inherit
        let (group, _) = try await withChildProcess(config) { child in child.processGroupID }
        #expect(group == nil)
    }

    /// Cancelling a task that is blocked writing to a child that never reads.
    @Test func cancellingABlockedWriter() async throws {
        var config = Probe.config("sleep", TestTime.childSleep)
        config.standardInput = .pipe
        let writing = Event()
        let pid = Box<Int32>(0)
        let task = Task {
            try await withChildProcess(config) { child in
                pid.set(child.processID)
                // Fill the pipe (64 KiB), then write far more than it holds: the
                // second write can only end by cancellation.
                try await child.standardInput.write(probePattern(64 << 10))
                writing.fire()
                try await child.standardInput.write(probePattern(8 << 20))
            }
        }
        try await withDeadline(TestTime.hang, "the first 64 KiB") { await writing.wait() }
        task.cancel()
        let outcome = try await withDeadline(TestTime.hang, "the cancelled writer") { await task.result }
        switch outcome {
        case .success: Issue.record("the write of 8 MiB to a child that never reads completed")
        case .failure(let error): #expect(error is CancellationError, "\(error)")
        }
        #expect(Proc.isDead(pid.get()))
    }

    /// Leaving the body with the child still running tears it down.
    @Test func leavingTheScopeEndsTheChild() async throws {
        let (pid, report) = try await withChildProcess(Probe.config("sleep", TestTime.childSleep)) { child in child.processID }
        #expect(report.termination == .signaled(.terminate))
        #expect(Proc.isDead(pid))
    }

    /// A body that throws: the child is torn down and the error comes through.
    @Test func throwingBodyEndsTheChild() async throws {
        struct Boom: Error {}
        let pid = Box<Int32>(0)
        await #expect(throws: Boom.self) {
            _ = try await withChildProcess(Probe.config("sleep", TestTime.childSleep)) { child in
                pid.set(child.processID)
                throw Boom()
            }
        }
        #expect(pid.get() > 0)
        #expect(Proc.isDead(pid.get()))
    }

    /// The child closes stdout but keeps running: the stream ends at EOF and the
    /// run still waits for the child.
    @Test func closedStdoutWhileRunning() async throws {
        let sleep = Duration.milliseconds(500)  // the child's own, after it closed stdout
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang) {
            try await run(Probe.config("close-stdout-then-sleep", "\(sleep.inSeconds)"))
        }
        #expect(result.termination == .exited(0))
        #expect(ContinuousClock.now - started >= TestTime.notBefore(sleep))
    }

    /// A grandchild that escaped the group (setsid) keeps the stdout pipe open:
    /// run still returns, a short drain deadline after the child.
    @Test func escapedGrandchildHoldingThePipe() async throws {
        let marker = "asyncspawn-escape-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }
        let config = Probe.config("escape", TestTime.childSleep, marker)
        let started = ContinuousClock.now
        let result = try await withDeadline(TestTime.hang, "run with an escaped grandchild") { [config] in
            try await run(config)
        }
        let elapsed = ContinuousClock.now - started
        #expect(result.termination == .exited(0))
        // Far below the grandchild's lifetime: the drain deadline ended the run.
        #expect(elapsed < TestTime.endsBy(config.drainTimeout), "run took \(elapsed)")
        let pid = try #require(Report(result.standardOutputString).int("grandchild"), "output \(result.standardOutputString)")
        // It really escaped: still running, in a session of its own.
        #expect(Proc.isAlive(pid))
        #expect(getsid(pid) == pid)
    }

    /// The same with the stream read by hand inside withChildProcess, without
    /// calling wait(): the iteration must end too (the drain deadline runs from
    /// the child's exit, not from a wait() that the body never reaches).
    @Test func escapedGrandchildStreamEnds() async throws {
        let marker = "asyncspawn-escape-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }  // also unblocks a hung body
        var config = Probe.config("escape", TestTime.childSleep, marker)
        config.drainTimeout = .milliseconds(100)
        let (grandchild, _) = try await withDeadline(TestTime.hang, "reading stdout held by an escaped grandchild") { [config] in
            try await withChildProcess(config) { child -> Int32? in
                var out: [UInt8] = []
                for try await chunk in child.standardOutput { out += chunk }
                return Report(String(decoding: out, as: UTF8.self)).int("grandchild")
            }
        }
        let pid = try #require(grandchild)
        #expect(Proc.isAlive(pid))
    }

    /// A producer that keeps the pipe full (1 MiB writes) gets its pipe enlarged:
    /// chunks larger than the default 64 KiB pipe appear, and every byte arrives.
    @Test func busyStreamGetsALargerPipe() async throws {
        var config = Configuration(executable: "/bin/dd", arguments: ["if=/dev/zero", "bs=1M", "count=64"])
        config.standardError = .null
        let ((total, largest), report) = try await withDeadline(TestTime.hang) { [config] in
            try await withChildProcess(config) { child -> (Int, Int) in
                var total = 0, largest = 0
                for try await chunk in child.standardOutput {
                    total += chunk.count
                    largest = max(largest, chunk.count)
                }
                // dd closes stdout before it exits (it prints its statistics
                // after): wait for it, or the scope's end tears it down.
                _ = try await child.wait()
                return (total, largest)
            }
        }
        #expect(report.termination == .exited(0))
        #expect(total == 64 << 20)
        #expect(largest > 64 * 1024, "no chunk larger than the default pipe: the pipe was not enlarged")
    }

    /// A consumer that first reads after the drain deadline still gets what the
    /// child wrote before it exited (the escaped grandchild keeps the pipe open,
    /// so there is no end of file): the deadline ends the waiting, not the data.
    /// The sleep is the subject here: the consumer must come after the deadline.
    @Test func lateConsumerAfterTheDrainDeadlineGetsTheOutput() async throws {
        let marker = "asyncspawn-late-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }
        var config = Probe.config("escape", TestTime.childSleep, marker)
        config.drainTimeout = .milliseconds(50)
        let (grandchild, _) = try await withDeadline(TestTime.hang, "reading after the drain deadline") { [config] in
            try await withChildProcess(config) { child -> Int32? in
                #expect(try await child.wait() == .exited(0))
                try await Task.sleep(for: .milliseconds(400))
                var out: [UInt8] = []
                for try await chunk in child.standardOutput { out += chunk }
                return Report(String(decoding: out, as: UTF8.self)).int("grandchild")
            }
        }
        let pid = try #require(grandchild, "the output written before the exit was lost")
        #expect(Proc.isAlive(pid))
    }

    /// When the child exits, what it left running in its group is torn down
    /// before run returns.
    @Test func leftoversInTheGroupAreTornDown() async throws {
        let marker = "asyncspawn-leftover-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }  // only if the teardown failed
        let result = try await withDeadline(TestTime.hang) { try await run(Probe.config("fork-exit", TestTime.childSleep, marker)) }
        #expect(result.termination == .exited(0))
        #expect(result.outcome == .exited)
        let pid = try #require(Report(result.standardOutputString).int("grandchild"))
        #expect(Proc.isDead(pid), "grandchild \(pid) left running")
    }

    /// The same while the body is still reading: the child exits, the leftover
    /// (same group) holds stdout open; the group is torn down at the child's
    /// exit, so the stream ends without the body calling wait().
    @Test func leftoversAreTornDownWhileStreaming() async throws {
        let marker = "asyncspawn-leftover-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }  // also unblocks a hung body
        let started = ContinuousClock.now
        let (grandchild, report) = try await withDeadline(TestTime.hang, "reading stdout past the child's exit") {
            try await withChildProcess(Probe.config("fork-exit", TestTime.childSleep, marker)) { child -> Int32? in
                var out: [UInt8] = []
                for try await chunk in child.standardOutput { out += chunk }
                return Report(String(decoding: out, as: UTF8.self)).int("grandchild")
            }
        }
        let elapsed = ContinuousClock.now - started
        let pid = try #require(grandchild)
        #expect(report.termination == .exited(0))
        #expect(elapsed < TestTime.endsBy(.zero), "the stream ended after \(elapsed)")  // far below the leftover's lifetime
        #expect(Proc.isDead(pid))
    }

    /// With tearDownGroupOnExit off, the leftover survives (and holds the pipe:
    /// the drain deadline ends the stream).
    @Test func leftoversSurviveWhenAsked() async throws {
        let marker = "asyncspawn-leftover-\(UUID().uuidString)"
        defer { Proc.killAll(withArgument: marker) }
        var config = Probe.config("fork-exit", TestTime.childSleep, marker)
        config.tearDownGroupOnExit = false
        let result = try await withDeadline(TestTime.hang) { [config] in try await run(config) }
        let pid = try #require(Report(result.standardOutputString).int("grandchild"))
        #expect(Proc.isAlive(pid))
        kill(pid, SIGKILL)
    }
}

/// A small deterministic generator for test data.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
