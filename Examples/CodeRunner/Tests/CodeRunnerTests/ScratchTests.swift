import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The scratch directories: which scratch root the server accepts. Every attack is
/// made by real programs over HTTP. Part of the serialized suite.
extension CodeRunnerTests {
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

/// Waits (bounded by `within`, a hang detector) until something is at `path`.
func waitUntilExists(_ path: String, within bound: Duration = TestTime.hang) async -> Bool {
    let deadline = ContinuousClock.now + bound
    while !pathExists(path) && ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(50))
    }
    return pathExists(path)
}
