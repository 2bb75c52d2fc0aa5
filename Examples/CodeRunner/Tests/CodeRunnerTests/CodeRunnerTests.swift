import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `code-runner` binary on 127.0.0.1, over real HTTP. One server per test
/// (fresh scratch root, checked empty at the end); tests run one at a time so the
/// timing checks do not compete for the two cores. Every wall-clock bound comes
/// from TestTime.
@Suite(.serialized, .timeLimit(.minutes(TestTime.testLimitMinutes)))
struct CodeRunnerTests {
    // MARK: Normal runs

    @Test func healthReportsLanguages() async throws {
        try await withServer { server in
            let health = try await server.get("/health")
            #expect(health.status == 200)
            #expect(health.body.contains("\"status\": \"ok\""))
            #expect(!health.body.contains("\"python3\": null"), "python3 not available: \(health.body)")
        }
    }

    @Test func pythonRunsWithStdin() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3",
                    source:
                        "import sys\ndata = sys.stdin.read()\nprint('got', data.upper())\nprint('to stderr', file=sys.stderr)\n",
                    stdin: "hello"))
            #expect(report.outcome == "exited")
            #expect(report.exit_code == 0)
            #expect(report.signal == nil)
            #expect(report.stdout == "got HELLO\n")
            #expect(report.stderr == "to stderr\n")
            #expect(report.stdout_bytes == 10)
            #expect(report.stdout_truncated == false && report.stderr_truncated == false)
            #expect(report.error == nil)
            #expect(report.wall_time_ms > 0)
            #expect(report.pid != nil)
            #expect(report.limits.cpu_seconds == 2 && report.limits.memory_bytes == 256 << 20)
        }
    }

    @Test func shRunsAndReportsExitCode() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "sh", source: "echo hi\necho oops >&2\nread line\necho \"line=$line\"\nexit 3\n",
                    stdin: "abc\n"))
            #expect(report.outcome == "exited")
            #expect(report.exit_code == 3)
            #expect(report.stdout == "hi\nline=abc\n")
            #expect(report.stderr == "oops\n")
        }
    }

    @Test func runsAsTheSandboxUserWhenRoot() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n"))
            #expect(report.outcome == "exited")
            if geteuid() == 0 {
                // A uid of the pool (default 60000-60999), the gid the same number.
                let ids = report.stdout.split(separator: " ")
                let uid = ids.first.flatMap { UInt32($0) }
                #expect(uid.map { (60000...60999).contains($0) } == true, "\(report.stdout)")
                #expect(report.stdout == "\(uid ?? 0) \(uid ?? 0) []\n")
            } else {
                #expect(report.stdout.hasPrefix("\(getuid()) \(getgid()) "))
            }
            // The run's own session: it is a session and group leader.
            let session = try await server.run(
                RunBody(
                    language: "python3",
                    source: "import os\nprint(os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid())\n"))
            #expect(session.stdout == "True True\n")
        }
    }

    // MARK: Limits

    @Test func cpuLimit() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "while True:\n    pass\n",
                    limits: ["cpu_seconds": 1, "wall_seconds": TestTime.hang.inSeconds]))
            #expect(report.outcome == "cpu_limit", "\(report)")
            #expect(report.signal == Int(SIGXCPU) || report.signal == Int(SIGKILL))
            // Not a precise bound: the kernel's rusage is sampled, and on a loaded machine
            // it was seen well below the limit that fired.
            #expect(report.user_time_ms + report.system_time_ms > 300)
            // A busy loop: ended by its second of CPU, long before the wall limit.
            #expect(report.wall_time_ms < TestTime.endsBy(.seconds(1)).inSeconds * 1000, "\(report)")
        }
    }

    @Test func memoryLimit() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "x = bytearray(512 << 20)\nprint('allocated')\n",
                    limits: ["memory_bytes": Double(128 << 20)]))
            #expect(report.outcome == "exited")
            #expect(report.exit_code != 0 && report.exit_code != nil)
            #expect(report.stderr.contains("MemoryError"), "stderr: \(report.stderr)")
            #expect(!report.stdout.contains("allocated"))
            #expect(report.limits.memory_bytes == 128 << 20)
        }
    }

    @Test func wallClockLimit() async throws {
        try await withServer { server in
            let limit = Duration.seconds(1)
            let started = ContinuousClock.now
            let report = try await server.run(
                RunBody(
                    language: "python3",
                    source: "import time\nprint('sleeping')\ntime.sleep(\(TestTime.childSleep))\n",
                    limits: ["wall_seconds": limit.inSeconds]))
            #expect(report.outcome == "timed_out")
            #expect(report.signal == Int(SIGKILL))
            #expect(report.stdout == "sleeping\n")
            #expect(report.wall_time_ms >= TestTime.notBefore(limit).inSeconds * 1000, "\(report)")
            #expect(report.wall_time_ms < TestTime.endsBy(limit).inSeconds * 1000, "\(report)")
            #expect(ContinuousClock.now - started < TestTime.endsBy(limit))
        }
    }

    @Test func outputLimit() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "while True:\n    print('x' * 999)\n",
                    limits: ["output_bytes": 10000, "wall_seconds": TestTime.hang.inSeconds]))
            #expect(report.outcome == "output_limit")
            #expect(report.stdout_truncated == true)
            #expect(report.stdout_bytes == 10000)
            #expect(report.stdout.utf8.count == 10000)
            #expect(report.stderr_truncated == false)
        }
    }

    @Test func networkIsRefused() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import socket
                        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        print('unix ok')
                        try:
                            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                            print('inet allowed')
                        except PermissionError as e:
                            print('PermissionError', e.errno)
                        socket.create_connection(('127.0.0.1', \(server.port)), timeout=2)
                        """))
            #expect(report.stdout.hasPrefix("unix ok\nPermissionError 1\n"), "stdout: \(report.stdout)")
            #expect(report.exit_code == 1)
            #expect(report.stderr.contains("PermissionError"))
        }
    }

    @Test func processesCannotLeaveTheGroupAndAreTornDownAtExit() async throws {
        try await withServer { server in
            // setsid is refused (so nothing escapes the group teardown), and a
            // background process left behind dies with the run.
            let report = try await server.run(
                RunBody(
                    language: "sh",
                    source:
                        "sleep \(TestTime.childSleep) &\necho $!\npython3 -c 'import os; os.setsid()' 2>&1 | tail -n 1\n"))
            #expect(report.outcome == "exited")
            let lines = report.stdout.split(separator: "\n")
            try #require(lines.count == 2, "stdout: \(report.stdout)")
            #expect(lines[1].contains("PermissionError"), "stdout: \(report.stdout)")
            let sleeper = try #require(Int(lines[0]))
            #expect(await waitUntilGone([sleeper]).isEmpty, "the background sleep outlived the run")
        }
    }

    // MARK: Concurrency

    @Test func fiftyConcurrentRequests() async throws {
        // Every request may wait for the whole batch, in the server's queue and in
        // the client: both bounds are hang detectors for 50 runs.
        let batch = TestTime.hang(forOperations: 50)
        try await withServer(["--max-concurrent-runs", "4", "--queue-timeout-seconds", "\(batch.inSeconds)"]) {
            server in
            // A client of its own whose pool really opens 50 connections at once
            // (the shared client's pool stops at 8 per host).
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(
                idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            // Watch /health meanwhile: at most 4 run at once, the rest wait in the queue.
            let watcher = Task {
                var most = (running: 0, queued: 0)
                while !Task.isCancelled {
                    if let body = try? await server.get("/health").body,
                        let health = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                    {
                        most.running = max(most.running, health["running"] as? Int ?? 0)
                        most.queued = max(most.queued, health["queued"] as? Int ?? 0)
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return most
            }
            let outcome: Result<[(Int, Report)], any Error>
            do {
                outcome = .success(
                    try await withThrowingTaskGroup(of: (Int, Report).self) { group in
                        for i in 0..<50 {
                            group.addTask {
                                let body =
                                    i % 2 == 0
                                    ? RunBody(
                                        language: "python3",
                                        source:
                                            "import sys, time\ntime.sleep(0.2)\nprint(\(i) * \(i), sys.stdin.read())\n",
                                        stdin: "in\(i)")
                                    : RunBody(
                                        language: "sh", source: "sleep 0.2\necho $(( \(i) * \(i) )) $(cat)\n",
                                        stdin: "in\(i)")
                                return (i, try await server.run(body, client: client, timeout: batch))
                            }
                        }
                        var all: [(Int, Report)] = []
                        for try await result in group { all.append(result) }
                        return all
                    })
            } catch {
                outcome = .failure(error)
            }
            watcher.cancel()
            let most = await watcher.value
            try await client.shutdown()
            let results = try outcome.get()
            #expect(results.count == 50)
            for (i, report) in results {
                #expect(report.outcome == "exited" && report.exit_code == 0, "run \(i): \(report)")
                #expect(report.stdout == "\(i * i) in\(i)\n", "run \(i): \(report.stdout) \(report.stderr)")
            }
            let pids = Set(results.compactMap { $0.1.pid })
            #expect(pids.count == 50)
            #expect(most.running <= 4 && most.running >= 1, "\(most)")
            #expect(most.queued > 0, "no request ever waited: \(most)")
        }
    }

    @Test func excessRequestsGet503AfterTheQueueTimeout() async throws {
        // The slow run holds the only slot until the test opens its gate.
        let gate = try Gate()
        defer { gate.remove() }
        let queueTimeout = Duration.milliseconds(500)
        try await withServer(["--max-concurrent-runs", "1", "--queue-timeout-seconds", "\(queueTimeout.inSeconds)"]) {
            server in
            defer { gate.open() }
            let slow = Task {
                try await server.run(RunBody(language: "sh", source: "\(gate.shellWait)\necho done\n"))
            }
            #expect(try await server.waitUntilRunning(1), "the slow run never took the slot")
            let started = ContinuousClock.now
            let refused = try await server.post("/run", json: RunBody(language: "sh", source: "echo hi\n"))
            #expect(refused.status == 503)
            #expect(refused.body.contains("no run slot became free"), "\(refused.body)")
            #expect(ContinuousClock.now - started >= TestTime.notBefore(queueTimeout))
            gate.open()
            #expect(try await slow.value.stdout == "done\n")
            // The slot is free again.
            #expect(try await server.run(RunBody(language: "sh", source: "echo again\n")).stdout == "again\n")
        }
    }

    @Test func aFullQueueGets503AtOnce() async throws {
        // The slow run holds the only slot until the test opens its gate; a queued
        // request would wait TestTime.childLifetime for a slot, far beyond "at once".
        let gate = try Gate()
        defer { gate.remove() }
        try await withServer([
            "--max-concurrent-runs", "1", "--max-queued-runs", "0",
            "--queue-timeout-seconds", "\(TestTime.childLifetime.inSeconds)",
        ]) { server in
            defer { gate.open() }
            let slow = Task {
                try await server.run(RunBody(language: "sh", source: "\(gate.shellWait)\necho done\n"))
            }
            #expect(try await server.waitUntilRunning(1), "the slow run never took the slot")
            let started = ContinuousClock.now
            let refused = try await server.post("/run?stream=1", json: RunBody(language: "sh", source: "echo hi\n"))
            #expect(refused.status == 503)
            #expect(refused.headers.first(name: "retry-after") == "1")
            #expect(refused.body.contains("too many runs"), "\(refused.body)")
            #expect(ContinuousClock.now - started < TestTime.endsBy(.zero))
            gate.open()
            #expect(try await slow.value.stdout == "done\n")
        }
    }

    // MARK: Streaming

    @Test func streamingDeliversOutputBeforeTheChildEnds() async throws {
        // The child prints "second", and ends, only once the test has received
        // "first" and opened the gate: were output held until the child ended, the
        // run would end only at its wall limit (outcome timed_out). No timing.
        let gate = try Gate()
        defer { gate.remove() }
        try await withServer { server in
            defer { gate.open() }
            var request = HTTPClientRequest(url: server.base + "/run?stream=1")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            let body = RunBody(
                language: "python3",
                source: "import sys\nprint('first')\nprint('err', file=sys.stderr)\n\(gate.pythonWait)print('second')\n")
            request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
            let sent = ContinuousClock.now
            let response = try await HTTPClient.shared.execute(request, timeout: TestTime.hang.timeAmount)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            var parser = SSEParser()
            var events: [ServerSentEvent] = []
            for try await buffer in response.body {
                for (event, data) in parser.feed(String(buffer: buffer)) {
                    events.append(ServerSentEvent(event: event, data: data, at: (ContinuousClock.now - sent).inSeconds))
                    if event == "stdout" { gate.open() }
                }
            }
            let names = events.map(\.event)
            #expect(names.first == "started")
            #expect(names.last == "report")
            let stdoutEvents = events.filter { $0.event == "stdout" }
            let stdoutText = try stdoutEvents.map { try decodeJSONString($0.data) }.joined()
            #expect(stdoutText == "first\nsecond\n")
            let stderrText = try events.filter { $0.event == "stderr" }.map { try decodeJSONString($0.data) }.joined()
            #expect(stderrText == "err\n")
            let report = try #require(events.last)
            let decoded = try JSONDecoder().decode(Report.self, from: Data(report.data.utf8))
            #expect(decoded.outcome == "exited" && decoded.exit_code == 0)
            #expect(decoded.stdout == "first\nsecond\n")
        }
    }

    // MARK: Client disconnect

    @Test func disconnectWhileStreamingTearsTheGroupDown() async throws {
        try await withServer { server in
            let (pids, pidsContinuation) = AsyncStream.makeStream(of: [Int].self)
            let client = Task {
                defer { pidsContinuation.finish() }
                var request = HTTPClientRequest(url: server.base + "/run?stream=1")
                request.method = .POST
                // Only the disconnect can end it before the test's bounds.
                let body = RunBody(
                    language: "sh", source: "sleep \(TestTime.childSleep) &\necho $$ $!\nwait\n",
                    limits: ["wall_seconds": TestTime.childLifetime.inSeconds])
                request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
                let response = try await HTTPClient.shared.execute(request, timeout: TestTime.hang.timeAmount)
                var parser = SSEParser()
                for try await buffer in response.body {
                    for (event, data) in parser.feed(String(buffer: buffer)) where event == "stdout" {
                        let numbers = try decodeJSONString(data).split(separator: " ").compactMap {
                            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
                        }
                        pidsContinuation.yield(numbers)
                    }
                }
            }
            var iterator = pids.makeAsyncIterator()
            let found = try #require(await iterator.next(), "no pid arrived")
            try #require(found.count == 2)
            #expect(found.allSatisfy(processIsAlive))
            let cancelled = ContinuousClock.now
            client.cancel()  // AsyncHTTPClient closes the connection
            _ = try? await client.value
            let alive = await waitUntilGone(found)
            #expect(alive.isEmpty, "still alive after the client went away: \(alive)")
            #expect(ContinuousClock.now - cancelled < TestTime.endsBy(.zero))
        }
    }

    @Test func disconnectWithoutStreamingTearsTheChildDown() async throws {
        let shared = try makeTemporaryDirectory("code-runner-pid")
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        try await withServer { server in
            let pidFile = shared + "/pid"
            let client = Task {
                try await server.run(
                    RunBody(
                        language: "python3",
                        source:
                            "import os, time\nopen('\(pidFile)', 'w').write(str(os.getpid()))\ntime.sleep(\(TestTime.childSleep))\n",
                        limits: ["wall_seconds": TestTime.childLifetime.inSeconds]))
            }
            var pid: Int? = nil
            let deadline = ContinuousClock.now + TestTime.hang
            while pid == nil && ContinuousClock.now < deadline {
                pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int($0) }
                if pid == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let child = try #require(pid, "the child never wrote its pid")
            #expect(processIsAlive(child))
            let cancelled = ContinuousClock.now
            client.cancel()
            _ = try? await client.value
            let alive = await waitUntilGone([child])
            #expect(alive.isEmpty, "the child outlived its client")
            #expect(ContinuousClock.now - cancelled < TestTime.endsBy(.zero))
        }
    }

    /// Issue 11, defect 1, through the server: every run runs as the same uid, so
    /// one submitted program can SIGSTOP the children of the others between their
    /// uid drop and their exec. On the main of 2026-12-03 that froze the thread
    /// that created every child: from then on no run ended and every later
    /// request got 503. Now each stopped child holds one spawning thread until
    /// its wall limit, and the server keeps answering.
    @Test func aRunStoppingOtherRunsChildrenCannotWedgeTheServer() async throws {
        let shared = try makeTemporaryDirectory("code-runner-attacker")
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let ready = shared + "/ready"
        try await withServer(["--max-concurrent-runs", "4", "--queue-timeout-seconds", "\(TestTime.hang.inSeconds)"]) {
            server in
            // SIGSTOP to every pid just created and about to be, again and again.
            let attacker = Task {
                try await server.run(
                    RunBody(
                        language: "python3",
                        source: """
                            import os, signal
                            open('\(ready)', 'w').write('1')
                            me = os.getpid()
                            while True:
                                last = int(open('/proc/sys/kernel/ns_last_pid').read())
                                for p in range(last - 4, last + 16):
                                    if p > 1 and p != me:
                                        try:
                                            os.kill(p, signal.SIGSTOP)
                                        except OSError:
                                            pass
                            """,
                        limits: ["wall_seconds": TestTime.childLifetime.inSeconds]))
            }
            defer { attacker.cancel() }
            let end = ContinuousClock.now + TestTime.hang
            while !FileManager.default.fileExists(atPath: ready) && ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(20))
            }
            try #require(FileManager.default.fileExists(atPath: ready), "the attacker never started")
            var outcomes: [String] = []
            for i in 0..<12 {
                let report = try await server.run(
                    RunBody(language: "sh", source: "echo \(i)\n", limits: ["wall_seconds": 1]))
                outcomes.append(report.outcome)
                #expect(report.outcome == "exited" || report.outcome == "timed_out", "run \(i): \(report)")
            }
            // The server still answers, and the attacker's runs never took it down.
            let health = try await server.get("/health")
            #expect(health.status == 200, "\(health.body)")
            attacker.cancel()
            _ = try? await attacker.value
            print("aRunStoppingOtherRunsChildrenCannotWedgeTheServer: \(outcomes)")
        }
    }

    /// Issue 12, item 2: a run that makes 130 children with clone(CLONE_PARENT)
    /// made them children of the server, which never reaped them: on the main
    /// of 2026-12-03 they stayed zombies of the runs' uid, and every later `sh`
    /// run failed with "Cannot fork" under the runs' process limit. Now the
    /// server's filter refuses CLONE_PARENT (and AsyncSpawn reaps such zombies
    /// of a run's group anyway), and later runs still fork.
    @Test func cloneParentCannotExhaustLaterRuns() async throws {
        try await withServer { server in
            let attack = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import ctypes, os
                        libc = ctypes.CDLL(None, use_errno=True)
                        made = 0
                        for _ in range(130):
                            r = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)
                            if r == 0:
                                os._exit(0)
                            if r < 0:
                                print('refused', ctypes.get_errno())
                                break
                            made += 1
                        print('made', made)
                        """))
            #expect(attack.outcome == "exited", "\(attack)")
            #expect(attack.stdout.hasPrefix("refused \(EPERM)"), "CLONE_PARENT was not refused: \(attack.stdout)")
            for i in 0..<3 {
                let later = try await server.run(RunBody(language: "sh", source: "ls / | head -2 | wc -l\n"))
                #expect(later.outcome == "exited" && later.exit_code == 0, "run \(i): \(later)")
                #expect(later.stdout == "2\n", "run \(i): \(later.stdout) \(later.stderr)")
            }
        }
    }

    /// Issue 12, item 4: all runs shared uid 65534, and /proc/PID/mem is guarded
    /// only by the same-uid rule: one run read and rewrote another's memory (on
    /// the main of 2026-12-03 run B below signalled run A, listed its working
    /// directory and opened its memory). Now each run has a uid of its own.
    @Test(.enabled(if: geteuid() == 0, "uids per run need a root server"))
    func aRunCannotReachAnotherRunsProcess() async throws {
        let shared = try makeTemporaryDirectory("code-runner-uid-per-run")
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let pidFile = shared + "/pid"
        try await withServer { server in
            let victim = Task {
                try await server.run(
                    RunBody(
                        language: "python3",
                        source: """
                            import os, time
                            secret = 'victim-secret-' + 'x' * 10
                            open('\(pidFile).tmp', 'w').write(str(os.getpid()))
                            os.rename('\(pidFile).tmp', '\(pidFile)')
                            time.sleep(\(TestTime.childSleep))
                            """,
                        limits: ["wall_seconds": TestTime.childLifetime.inSeconds]))
            }
            defer { victim.cancel() }
            let end = ContinuousClock.now + TestTime.hang
            while !FileManager.default.fileExists(atPath: pidFile) && ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(20))
            }
            let pid = try #require(try? String(contentsOfFile: pidFile, encoding: .utf8), "the victim never started")
            let attack = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import os, signal
                        pid = \(pid)
                        def attempt(what, f):
                            try:
                                f()
                                print(what, 'ok')
                            except OSError as e:
                                print(what, type(e).__name__)
                        attempt('signal', lambda: os.kill(pid, signal.SIGCONT))
                        attempt('cwd', lambda: os.listdir('/proc/%d/cwd' % pid))
                        attempt('mem', lambda: open('/proc/%d/mem' % pid, 'rb').close())
                        attempt('environ', lambda: open('/proc/%d/environ' % pid, 'rb').read())
                        print(os.getuid())
                        """))
            let lines = attack.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 5, "\(attack)")
            for line in lines.prefix(4) {
                #expect(line.hasSuffix("PermissionError"), "another run's process was reachable: \(line)")
            }
            let victimOwner = try FileManager.default.attributesOfItem(atPath: "/proc/\(pid)")[.ownerAccountID] as? NSNumber
            #expect(lines.last != victimOwner?.stringValue, "both runs ran as uid \(lines.last ?? "?")")
            victim.cancel()
            _ = try? await victim.value
        }
    }

    // MARK: Bad requests

    @Test func malformedRequestsGet400WithAClearMessage() async throws {
        try await withServer { server in
            let cases: [(String, String)] = [
                ("{\"language\": \"python3\", \"source\": ", "not valid JSON"),
                ("[1, 2]", "must be a JSON object"),
                ("", "body is empty"),
                ("{\"source\": \"print(1)\"}", "missing field 'language'"),
                ("{\"language\": \"ruby\", \"source\": \"puts 1\"}", "unknown language 'ruby'"),
                ("{\"language\": \"python3\"}", "missing field 'source'"),
                ("{\"language\": \"python3\", \"source\": 5}", "field 'source' must be a string"),
                (
                    "{\"language\": \"sh\", \"source\": \"\", \"limits\": {\"cpu_seconds\": 1000}}",
                    "above this server's maximum"
                ),
                (
                    "{\"language\": \"sh\", \"source\": \"\", \"limits\": {\"cpu_seconds\": -1}}",
                    "must be a positive number"
                ),
                ("{\"language\": \"sh\", \"source\": \"\", \"limits\": {\"cpu\": 1}}", "unknown field 'limits.cpu'"),
                ("{\"language\": \"sh\", \"source\": \"\", \"stdin\": true}", "field 'stdin' must be a string"),
                ("{\"language\": \"sh\", \"source\": \"\", \"extra\": 1}", "unknown field 'extra'"),
            ]
            for (body, message) in cases {
                let answer = try await server.post("/run", raw: Array(body.utf8))
                #expect(answer.status == 400, "\(body): \(answer.status)")
                #expect(answer.body.contains(message), "\(body): \(answer.body)")
                #expect(answer.body.hasPrefix("{\"error\":{\"message\":"), "\(answer.body)")
            }
            #expect(try await server.get("/health").status == 200)
            #expect(try await server.run(RunBody(language: "sh", source: "echo fine\n")).stdout == "fine\n")
        }
    }

    @Test func oversizedBodiesGet413() async throws {
        try await withServer(["--max-body-bytes", "4096"]) { server in
            let big = RunBody(
                language: "python3", source: "# " + String(repeating: "x", count: 100_000) + "\nprint(1)\n")
            let answer = try await server.post("/run", json: big)
            #expect(answer.status == 413)
            #expect(answer.body.contains("4096"), "\(answer.body)")
            #expect(try await server.get("/health").status == 200)
            #expect(try await server.run(RunBody(language: "python3", source: "print('small')\n")).stdout == "small\n")
        }
    }
}
