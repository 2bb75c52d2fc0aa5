import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `code-runner` binary on 127.0.0.1, over real HTTP. One server per test
/// (fresh scratch root, checked empty at the end); tests run one at a time so the
/// timing checks do not compete for the two cores.
@Suite(.serialized, .timeLimit(.minutes(3)))
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
                #expect(report.stdout == "65534 65534 []\n")
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
                    limits: ["cpu_seconds": 1, "wall_seconds": 10]))
            #expect(report.outcome == "cpu_limit", "\(report)")
            #expect(report.signal == Int(SIGXCPU) || report.signal == Int(SIGKILL))
            // Not a precise bound: the kernel's rusage is sampled, and on a loaded machine
            // it was seen well below the limit that fired.
            #expect(report.user_time_ms + report.system_time_ms > 300)
            #expect(report.wall_time_ms < 9000)
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
            let started = Date()
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "import time\nprint('sleeping')\ntime.sleep(30)\n",
                    limits: ["wall_seconds": 1]))
            #expect(report.outcome == "timed_out")
            #expect(report.signal == Int(SIGKILL))
            #expect(report.stdout == "sleeping\n")
            #expect(report.wall_time_ms >= 900 && report.wall_time_ms < 5000)
            #expect(Date().timeIntervalSince(started) < 10)
        }
    }

    @Test func outputLimit() async throws {
        try await withServer { server in
            let report = try await server.run(
                RunBody(
                    language: "python3", source: "while True:\n    print('x' * 999)\n",
                    limits: ["output_bytes": 10000, "wall_seconds": 10]))
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
                    source: "sleep 60 &\necho $!\npython3 -c 'import os; os.setsid()' 2>&1 | tail -n 1\n"))
            #expect(report.outcome == "exited")
            let lines = report.stdout.split(separator: "\n")
            try #require(lines.count == 2, "stdout: \(report.stdout)")
            #expect(lines[1].contains("PermissionError"), "stdout: \(report.stdout)")
            let sleeper = try #require(Int(lines[0]))
            #expect(await waitUntilGone([sleeper], within: 5).isEmpty, "the background sleep outlived the run")
        }
    }

    // MARK: Concurrency

    @Test func fiftyConcurrentRequests() async throws {
        try await withServer(["--max-concurrent-runs", "4", "--queue-timeout-seconds", "120"]) { server in
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
                                return (i, try await server.run(body, client: client))
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
        try await withServer(["--max-concurrent-runs", "1", "--queue-timeout-seconds", "0.5"]) { server in
            let slow = Task {
                try await server.run(RunBody(language: "sh", source: "sleep 3\necho done\n"))
            }
            // Let the slow run take the only slot.
            var running = false
            for _ in 0..<100 where !running {
                try await Task.sleep(for: .milliseconds(50))
                running = try await server.get("/health").body.contains("\"running\": 1")
            }
            #expect(running)
            let started = Date()
            let refused = try await server.post("/run", json: RunBody(language: "sh", source: "echo hi\n"))
            #expect(refused.status == 503)
            #expect(refused.body.contains("no run slot became free"), "\(refused.body)")
            #expect(Date().timeIntervalSince(started) >= 0.4)
            #expect(try await slow.value.stdout == "done\n")
            // The slot is free again.
            #expect(try await server.run(RunBody(language: "sh", source: "echo again\n")).stdout == "again\n")
        }
    }

    @Test func aFullQueueGets503AtOnce() async throws {
        try await withServer(["--max-concurrent-runs", "1", "--max-queued-runs", "0"]) { server in
            let slow = Task {
                try await server.run(RunBody(language: "sh", source: "sleep 2\necho done\n"))
            }
            var running = false
            for _ in 0..<100 where !running {
                try await Task.sleep(for: .milliseconds(50))
                running = try await server.get("/health").body.contains("\"running\": 1")
            }
            #expect(running)
            let started = Date()
            let refused = try await server.post("/run?stream=1", json: RunBody(language: "sh", source: "echo hi\n"))
            #expect(refused.status == 503)
            #expect(refused.headers.first(name: "retry-after") == "1")
            #expect(refused.body.contains("too many runs"), "\(refused.body)")
            #expect(Date().timeIntervalSince(started) < 1)
            #expect(try await slow.value.stdout == "done\n")
        }
    }

    // MARK: Streaming

    @Test func streamingDeliversOutputBeforeTheChildEnds() async throws {
        try await withServer { server in
            var request = HTTPClientRequest(url: server.base + "/run?stream=1")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            let body = RunBody(
                language: "python3",
                source:
                    "import sys, time\nprint('first')\nprint('err', file=sys.stderr)\ntime.sleep(2)\nprint('second')\n")
            request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
            let sent = Date()
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            var parser = SSEParser()
            var events: [ServerSentEvent] = []
            for try await buffer in response.body {
                for (event, data) in parser.feed(String(buffer: buffer)) {
                    events.append(ServerSentEvent(event: event, data: data, at: Date().timeIntervalSince(sent)))
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
            let first = try #require(stdoutEvents.first)
            let report = try #require(events.last)
            // "first" arrived while the child was still sleeping.
            #expect(report.at - first.at >= 1.0, "first at \(first.at) s, report at \(report.at) s")
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
                let body = RunBody(
                    language: "sh", source: "sleep 60 &\necho $$ $!\nwait\n", limits: ["wall_seconds": 30])
                request.body = .bytes(ByteBuffer(bytes: Array(try JSONEncoder().encode(body))))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
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
            let cancelled = Date()
            client.cancel()  // AsyncHTTPClient closes the connection
            _ = try? await client.value
            let alive = await waitUntilGone(found, within: 5)
            #expect(alive.isEmpty, "still alive after the client went away: \(alive)")
            #expect(Date().timeIntervalSince(cancelled) < 5)
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
                        source: "import os, time\nopen('\(pidFile)', 'w').write(str(os.getpid()))\ntime.sleep(60)\n",
                        limits: ["wall_seconds": 30]))
            }
            var pid: Int? = nil
            let deadline = Date().addingTimeInterval(20)
            while pid == nil && Date() < deadline {
                pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int($0) }
                if pid == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let child = try #require(pid, "the child never wrote its pid")
            #expect(processIsAlive(child))
            let cancelled = Date()
            client.cancel()
            _ = try? await client.value
            let alive = await waitUntilGone([child], within: 5)
            #expect(alive.isEmpty, "the child outlived its client")
            #expect(Date().timeIntervalSince(cancelled) < 5)
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
