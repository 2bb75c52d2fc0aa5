import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The scratch directories: what removing one may touch, how deep and how large
/// a tree it removes, and which scratch root the server accepts. Every attack is
/// made by real programs over HTTP. Part of the serialized suite.
extension CodeRunnerTests {
    // MARK: Removal touches nothing outside the run's directory

    /// Issue 12, item 1. On the main of 2026-12-03 the server removed a run's
    /// directory by path strings (lstat, then chmod, opendir and unlink on
    /// "dir/name", recursing), and another run of the same uid could write in it
    /// meanwhile. Here run B, sent first, waits until the server starts removing
    /// run A's directory, then keeps exchanging A's subdirectories d0...d49 with
    /// symlinks to a root-owned directory (renameat2 RENAME_EXCHANGE: each name is
    /// at every instant either the real directory or the symlink). Then the
    /// server deleted victim/secret and victim/sub (the issue also saw a victim
    /// chmodded 0700), and A's directory was left behind (the test failed on
    /// each of those). Now
    /// removal walks by descriptor (openat with O_NOFOLLOW, unlinkat), so a
    /// symlink is only ever unlinked, and the victim is untouched.
    ///
    /// Since each run of a root server has a uid of its own (item 4), run B can
    /// no longer enter run A's directory at all. The removal must be safe on its
    /// own, so this test runs the server as uid 65534, whose runs share its uid,
    /// and the victim is a directory of that uid outside every run's.
    @Test(.enabled(if: geteuid() == 0, "starts the server as uid 65534"))
    func removalFollowsNoSymlinkAnotherRunSwapsIn() async throws {
        let outside = try makeTemporaryDirectory("code-runner-victim")
        defer { try? FileManager.default.removeItem(atPath: outside) }
        chmod(outside, 0o755)
        let victim = outside + "/victim"
        try FileManager.default.createDirectory(atPath: victim + "/sub", withIntermediateDirectories: true)
        try "victim's secret".write(toFile: victim + "/secret", atomically: false, encoding: .utf8)
        try "victim's inner".write(toFile: victim + "/sub/inner", atomically: false, encoding: .utf8)
        for path in [victim, victim + "/sub", victim + "/secret", victim + "/sub/inner"] {
            chown(path, 65534, 65534)
        }
        chmod(victim, 0o755)
        chmod(victim + "/sub", 0o755)
        let shared = try makeTemporaryDirectory("code-runner-shared")
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let pathFile = shared + "/a-path"
        let targets = 50
        // Run B busy-loops for as long as the removal lasts; creating run A's files
        // took more than the default 2 s of CPU on a busy machine.
        try await withServer(["--max-cpu-seconds", "\(Int(TestTime.hang.inSeconds))"], launch: Launch(user: 65534)) {
            server in
            let swapper = Task {
                try await server.run(
                    RunBody(
                        language: "python3",
                        source: """
                            import ctypes, os, time
                            libc = ctypes.CDLL(None, use_errno=True)
                            deadline = time.monotonic() + \(TestTime.hang.inSeconds)
                            while not os.path.exists('\(pathFile)'):
                                if time.monotonic() > deadline:
                                    raise SystemExit('run A never wrote its path')
                                time.sleep(0.01)
                            a = open('\(pathFile)').read().strip()
                            for i in range(\(targets)):
                                os.symlink('\(victim)', 'link%d' % i)
                            pairs = [(b'link%d' % i, ('%s/d%d' % (a, i)).encode()) for i in range(\(targets))]
                            def count():
                                try:
                                    return len(os.listdir(a))
                                except FileNotFoundError:
                                    return -1
                            # The server removes A once A has ended: wait for the count to drop.
                            first = count()
                            while count() >= first and time.monotonic() < deadline:
                                pass
                            swaps = 0
                            while os.path.exists(a) and time.monotonic() < deadline:
                                for link, target in pairs:
                                    if libc.renameat2(-100, link, -100, target, 2) == 0:  # RENAME_EXCHANGE
                                        swaps += 1
                            print('swaps', swaps)
                            print('a gone', not os.path.exists(a))
                            """,
                        limits: [
                            "wall_seconds": (TestTime.hang * 2).inSeconds, "cpu_seconds": TestTime.hang.inSeconds,
                        ]),
                    // Past run B's own deadline: when run A's directory stays (as it
                    // did), B still reports, and the victim is checked.
                    timeout: TestTime.hang * 2)
            }
            #expect(try await server.waitUntilRunning(1), "run B never started")
            let a = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import os
                        for i in range(30000):
                            open('f%d' % i, 'w').close()
                        for i in range(\(targets)):
                            os.makedirs('d%d/sub' % i)
                            open('d%d/secret' % i, 'w').write('a')
                            open('d%d/sub/inner' % i, 'w').write('a')
                        open('\(pathFile)', 'w').write(os.getcwd())
                        print(os.getcwd())
                        """,
                    limits: ["cpu_seconds": TestTime.hang.inSeconds]))
            #expect(a.outcome == "exited" && a.exit_code == 0, "\(a)")
            let b = try await swapper.value
            #expect(b.outcome == "exited" && b.exit_code == 0, "\(b)")
            print("removalFollowsNoSymlinkAnotherRunSwapsIn: run B: \(b.stdout)")
            // The attack ran while the server removed A, and A went away.
            let swaps = b.stdout.split(separator: "\n").first.flatMap { Int($0.split(separator: " ").last ?? "") }
            #expect((swaps ?? 0) > 0, "run B never swapped a directory: \(b.stdout) \(b.stderr)")
            #expect(b.stdout.contains("a gone True"), "\(b.stdout)")
            let aPath = a.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!aPath.isEmpty && !pathExists(aPath), "run A's directory is still there")
        }
        // Nothing outside the runs' directories was touched.
        #expect(
            (try? String(contentsOfFile: victim + "/secret", encoding: .utf8)) == "victim's secret",
            "victim/secret was deleted")
        #expect(
            (try? String(contentsOfFile: victim + "/sub/inner", encoding: .utf8)) == "victim's inner",
            "victim/sub/inner was deleted")
        #expect(fileMode(victim) == 0o755, "the victim's mode changed: \(String(fileMode(victim) ?? 0, radix: 8))")
        #expect(fileMode(victim + "/sub") == 0o755)
    }

    // MARK: Any depth

    /// Issue 12, item 8. On the main of 2026-12-03 removal built each path as a
    /// string, so a tree deeper than PATH_MAX (4096 bytes) failed with
    /// ENAMETOOLONG and stayed behind for good, with its data; so did a name that
    /// is not UTF-8 (it was decoded, and the decoded name did not exist). The
    /// server runs with RLIMIT_NOFILE 200 here: a walk holding one descriptor per
    /// level (3,000) could not finish either. Now removal goes by descriptor and
    /// holds at most 65 of them (a subtree deeper than 64 levels is moved up to
    /// the run's top directory and removed from there).
    @Test func aTreeDeeperThanPathMaxIsRemoved() async throws {
        try await withServer(launch: Launch(shellPrefix: "ulimit -n 200")) { server in
            let report = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import os
                        print(os.getcwd())
                        open(b'not-utf8-\\xff\\xfe', 'w').write('x')
                        for i in range(3000):
                            os.mkdir('a')
                            os.chdir('a')
                        open('data', 'w').write('left at depth 3000')
                        open(b'deep-\\xff', 'w').write('x')
                        print('deep')
                        """))
            #expect(report.outcome == "exited" && report.exit_code == 0, "\(report)")
            let lines = report.stdout.split(separator: "\n")
            try #require(lines.count == 2 && lines[1] == "deep", "\(report.stdout) \(report.stderr)")
            let directory = String(lines[0])
            #expect(await waitUntilMissing(directory), "the deep directory is still there")
        }
    }

    /// A server that is not root runs its programs with its own uid, so a run
    /// can take away the owner's rights on its directories (and on its own
    /// directory): removal gives them back, to directories only, by descriptor
    /// (fchmod on a directory it opened with O_NOFOLLOW, fchmodat with
    /// AT_SYMLINK_NOFOLLOW relative to the parent), also past the depth where
    /// subtrees are moved up. (The old removal chmodded by path; this guards the
    /// new one rather than reproducing a defect.) Needs root to start the server
    /// as uid 65534.
    @Test(.enabled(if: geteuid() == 0, "starts the server as uid 65534"))
    func aServerNotRunningAsRootRemovesWhatARunLockedUp() async throws {
        try await withServer(launch: Launch(user: 65534)) { server in
            let report = try await server.run(
                RunBody(
                    language: "python3",
                    source: """
                        import os
                        top = os.getcwd()
                        print(os.getuid(), top)
                        os.makedirs('x/y/z')
                        open('x/y/z/f', 'w').write('x')
                        open('x/y/f', 'w').write('x')
                        os.chmod('x/y/f', 0)
                        os.chmod('x/y/z', 0)       # nothing
                        os.chmod('x/y', 0o300)     # no read
                        for name, mode in (('w', 0o500), ('q', 0o600), ('n', 0)):  # no write, no search, nothing
                            os.mkdir(name)
                            open(name + '/f', 'w').write('x')
                            os.chmod(name, mode)
                        path = 'deep'
                        for i in range(150):
                            os.mkdir(path)
                            open(path + '/f', 'w').write('x')
                            path += '/d'
                        while path != 'deep':      # lock every level, the deepest first
                            path = path[:-2]
                            os.chmod(path, 0o100 if len(path) % 3 else 0)
                        os.chmod(top, 0o500)       # the run's own directory: no write
                        print('locked')
                        """))
            #expect(report.outcome == "exited" && report.exit_code == 0, "\(report)")
            let lines = report.stdout.split(separator: "\n")
            try #require(lines.count == 2 && lines[1] == "locked", "\(report.stdout) \(report.stderr)")
            #expect(lines[0].hasPrefix("65534 "), "\(lines[0])")
            let directory = String(lines[0].dropFirst("65534 ".count))
            #expect(await waitUntilMissing(directory), "the locked directory is still there")
        }
    }

    // MARK: Removal never stalls the server

    /// Issue 12, item 9. On the main of 2026-12-03 a run's directory was removed
    /// on Swift's cooperative pool, whose threads also answer requests: as many
    /// runs as the pool has threads, each leaving 50,000 files, kept `/health`
    /// from answering until their removal ended (the test failed: 18 s on this
    /// 2-core machine). The files sit 1,000 levels deep: that removal resolved a
    /// 2,000-byte path twice for each file, which made it last well past
    /// TestTime's bound while this test stays short. Now removal runs on a
    /// thread of its own (and a descriptor walk does not care about depth):
    /// `/health` answers within the bound the whole time.
    @Test func removingLargeDirectoriesDoesNotStallTheServer() async throws {
        // Enough runs to occupy every thread of the server's cooperative pool
        // (one per processor).
        let runs = max(2, ProcessInfo.processInfo.activeProcessorCount, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        try await withServer([
            "--max-concurrent-runs", "\(runs)", "--max-cpu-seconds", "\(Int(TestTime.hang.inSeconds))",
        ]) { server in
            let stop = Atomic<Bool>(false)
            defer { stop.store(true, ordering: .relaxed) }
            // Polls /health until the runs are done: each answer's delay.
            let watcher = Task { () -> (slowest: Duration, answers: Int, failures: [String]) in
                var slowest = Duration.zero
                var answers = 0
                var failures: [String] = []
                while !stop.load(ordering: .relaxed) {
                    let sent = ContinuousClock.now
                    do {
                        let health = try await server.get("/health")
                        if health.status != 200 { failures.append("status \(health.status)") }
                        slowest = max(slowest, ContinuousClock.now - sent)
                        answers += 1
                    } catch {
                        failures.append("\(error) after \(ContinuousClock.now - sent)")
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return (slowest, answers, failures)
            }
            let reports = try await withThrowingTaskGroup(of: Report.self) { group in
                for _ in 0..<runs {
                    group.addTask {
                        try await server.run(
                            RunBody(
                                language: "python3",
                                source: """
                                    import os
                                    depth = 1000
                                    for i in range(depth):
                                        os.mkdir('a')
                                        os.chdir('a')
                                    for i in range(50000):
                                        os.close(os.open('f%d' % i, os.O_WRONLY | os.O_CREAT, 0o644))
                                    print(depth)
                                    """,
                                limits: ["cpu_seconds": TestTime.hang.inSeconds]),
                            timeout: TestTime.hang(forOperations: runs))
                    }
                }
                var all: [Report] = []
                for try await report in group { all.append(report) }
                return all
            }
            stop.store(true, ordering: .relaxed)
            let watched = await watcher.value
            for report in reports {
                #expect(report.outcome == "exited" && report.exit_code == 0, "\(report)")
            }
            print("removingLargeDirectoriesDoesNotStallTheServer: \(runs) runs, \(watched)")
            #expect(watched.failures.isEmpty, "\(watched.failures)")
            #expect(watched.answers > 0)
            #expect(
                watched.slowest < TestTime.endsBy(.zero),
                "GET /health took \(watched.slowest) while the server removed the runs' files")
        }
    }

    // MARK: The scratch root

    /// Issue 12, item 7 (and its suspected chown race). On the main of 2026-12-03
    /// the default scratch root was `$TMPDIR/code-runner-<pid>`, and a directory
    /// already there was used as it was: a run that made it for the next server's
    /// pid (the issue's made 2,700 guesses; this test knows the pid: the server is
    /// held in `sh` until it is planted) got a scratch root it owned, and a later
    /// run listed and read every run's files (the test failed: the attacker read
    /// the victim's file). A regular file planted there kept the server from
    /// starting ("not a directory"). In a root the runs can write, a run could
    /// also have swapped a new run directory for a symlink between its creation
    /// and its chown, making the server chown any file.
    ///
    /// Now the default root is made fresh with a random name, by descriptor, owned
    /// by the server and mode 0711: the planted entry is ignored, the runs can
    /// neither list the root nor add, rename or replace anything in it (so the
    /// swap cannot be made; the server also chowns through the descriptor of the
    /// directory it made, never by path), and the root is removed at exit.
    @Test(arguments: ["directory", "file"])
    func aScratchRootPlantedByARunIsNotUsed(_ kind: String) async throws {
        let temporary = try makeTemporaryDirectory("code-runner-tmp")
        chmod(temporary, 0o1777)  // like /tmp: every user may create entries
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        let shared = try makeTemporaryDirectory("code-runner-shared")
        chmod(shared, 0o777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let gate = try Gate()
        defer { gate.remove() }
        let planted = Mutex<String>("")
        try await withServer { first in
            let plant: @Sendable (Int32) async throws -> Void = { pid in
                let path = "\(temporary)/code-runner-\(pid)"
                planted.withLock { $0 = path }
                let report = try await first.run(
                    RunBody(
                        language: "python3",
                        source: kind == "directory"
                            ? "import os\nos.mkdir('\(path)')\nos.chmod('\(path)', 0o777)\nopen('\(path)/canary', 'w').write('planted')\n"
                            : "open('\(path)', 'w').write('planted')\n"))
                try #require(report.exit_code == 0, "planting failed: \(report)")
            }
            try await withServer(
                launch: Launch(scratch: .serverDefault(temporaryDirectory: temporary), beforeStart: plant)
            ) { second in
                defer { gate.open() }
                let plantedPath = planted.withLock { $0 }
                let ready = shared + "/ready"
                let victim = Task {
                    try await second.run(
                        RunBody(
                            language: "python3",
                            source: """
                                open('mine', 'w').write("the victim run's data")
                                open('\(ready)', 'w').write('1')
                                \(gate.pythonWait)
                                """))
                }
                #expect(await waitUntilExists(ready), "the victim run never started")
                let attacker = try await second.run(
                    RunBody(
                        language: "python3",
                        source: """
                            import os
                            me = os.getcwd()
                            root = os.path.dirname(me)
                            print('root', root)
                            found = []
                            for d, dirs, files in os.walk('\(plantedPath)'):
                                for f in files:
                                    try:
                                        found.append(f + '=' + open(os.path.join(d, f)).read())
                                    except OSError as e:
                                        found.append(f + ' ' + type(e).__name__)
                            print('planted', sorted(found))
                            try:
                                print('listing', sorted(os.listdir(root)))
                            except PermissionError:
                                print('listing refused')
                            try:
                                os.symlink('/etc/passwd', root + '/run-swapped')
                                print('symlink made')
                            except PermissionError:
                                print('symlink refused')
                            try:
                                os.rename(me, me + '-moved')
                                os.rename(me + '-moved', me)
                                print('rename made')
                            except PermissionError:
                                print('rename refused')
                            """))
                gate.open()
                _ = try await victim.value
                let lines = attacker.stdout.split(separator: "\n").map(String.init)
                try #require(lines.count == 5, "\(attacker.stdout) \(attacker.stderr)")
                #expect(lines[0] != "root \(plantedPath)", "the server used the planted scratch root")
                #expect(lines[0] == "root \(second.scratchRoot)", "\(lines[0]) vs \(second.scratchRoot)")
                #expect(second.scratchRoot.hasPrefix(temporary + "/code-runner-"), "\(second.scratchRoot)")
                #expect(
                    lines[1] == (kind == "directory" ? "planted ['canary=planted']" : "planted []"),
                    "the attacker found other runs' files: \(lines[1])")
                if geteuid() == 0 {
                    // Runs have their own uid: the root is the server's, mode 0711.
                    #expect(lines[2] == "listing refused")
                    #expect(lines[3] == "symlink refused")
                    #expect(lines[4] == "rename refused")
                }
            }
        }
        // The second server removed the root it made, and left the planted entry alone.
        let left = (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []
        #expect(left.map { temporary + "/" + $0 } == [planted.withLock { $0 }], "\(left)")
    }

    /// Issue 12, item 7. On the main of 2026-12-03 a given `--scratch-root` was
    /// used if `stat` said it was a directory: through a symlink, owned by another
    /// user, writable by everyone, or under a directory everyone may write (the
    /// test failed: the server started with each). Now each is a startup error
    /// naming the problem, and so is a regular file.
    @Test func aGivenScratchRootIsChecked() async throws {
        let work = try makeTemporaryDirectory("code-runner-roots")
        defer { try? FileManager.default.removeItem(atPath: work) }
        func directory(_ name: String, _ mode: mode_t) throws -> String {
            let path = work + "/" + name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            chmod(path, mode)
            return path
        }
        let good = try directory("good", 0o711)
        var cases: [(String, String)] = []
        let link = work + "/link"
        symlink(good, link)
        cases.append((link, "\(link) is a symbolic link"))
        let file = work + "/file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        cases.append((file, "\(file) is not a directory"))
        cases.append((try directory("open", 0o777), "\(work)/open is writable by others"))
        cases.append((try directory("group", 0o771), "\(work)/group is writable by its group"))
        let shared = try directory("shared", 0o777)
        let under = try directory("shared/root", 0o711)
        cases.append((under, "\(shared), a directory above the scratch root, is writable by others"))
        if geteuid() == 0 {
            let other = try directory("other", 0o711)
            chown(other, 65534, 65534)
            cases.append((other, "\(other) is owned by uid 65534, not by this server's uid 0"))
        }
        for (path, message) in cases {
            do {
                let (status, log) = try await serverRefusal(["--scratch-root", path])
                #expect(status == 1, "\(path): exit status \(status)")
                #expect(log.contains(message), "\(path): expected '\(message)' in the log: \(log)")
            } catch {
                Issue.record(error)
            }
        }
    }
}

/// True when something (even a dangling symlink) is at `path`.
func pathExists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}

/// The permission bits of `path` (nil when it is not there).
func fileMode(_ path: String) -> mode_t? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o7777
}

/// Waits (bounded by `within`, a hang detector) until nothing is at `path`.
func waitUntilMissing(_ path: String, within bound: Duration = TestTime.hang) async -> Bool {
    let deadline = ContinuousClock.now + bound
    while pathExists(path) && ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(50))
    }
    return !pathExists(path)
}

/// Waits (bounded by `within`, a hang detector) until something is at `path`.
func waitUntilExists(_ path: String, within bound: Duration = TestTime.hang) async -> Bool {
    let deadline = ContinuousClock.now + bound
    while !pathExists(path) && ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(50))
    }
    return pathExists(path)
}
