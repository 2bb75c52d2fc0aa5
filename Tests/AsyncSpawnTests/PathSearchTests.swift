// The PATH search, done in the parent, judged as the child will see it (issue
// 11, defect 12): relative entries against the child's working directory, and
// executability for the child's uid and groups.
@testable import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct PathSearchTests {
    private func script(_ path: String, printing text: String, mode: Int) {
        _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\necho \(text)\n".utf8),
                                           attributes: [.posixPermissions: mode])
        chown(path, 0, 0)
        chmod(path, mode_t(mode))
    }

    /// A relative PATH entry is taken against the child's working directory. On
    /// the main of 2026-12-03 it was taken against the parent's, so this failed
    /// with step resolve (ENOENT), or ran another file when the parent's
    /// directory had one.
    @Test func relativeEntryAgainstTheChildsDirectory() async throws {
        let dir = TempDir(mode: 0o755)
        try FileManager.default.createDirectory(atPath: dir.file("bin"), withIntermediateDirectories: false)
        script(dir.file("bin/asyncspawn-relative-probe"), printing: "child-dir", mode: 0o755)
        var config = Configuration(executable: "asyncspawn-relative-probe")
        config.environment = .custom(["PATH": "bin"])
        config.workingDirectory = dir.path
        let result = try await run(config)
        #expect(result.termination == .exited(0), "stderr: \(result.standardErrorString)")
        #expect(result.standardOutputString == "child-dir\n")
    }

    /// A file the parent (root) may execute but the child's uid may not is
    /// skipped, as execvp in the child would skip it. On the main of 2026-12-03
    /// the search picked it and the exec failed with EACCES.
    @Test func executableForTheChildsUID() async throws {
        let dir = TempDir(mode: 0o755)
        for sub in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: dir.file(sub), withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o755])
        }
        script(dir.file("a/asyncspawn-uid-probe"), printing: "root-only", mode: 0o700)
        script(dir.file("b/asyncspawn-uid-probe"), printing: "everyone", mode: 0o755)
        var config = Configuration(executable: "asyncspawn-uid-probe")
        config.environment = .custom(["PATH": dir.file("a") + ":" + dir.file("b")])
        config.credentials = Credentials(userID: 65534, groupID: 65534)
        config.workingDirectory = "/"
        let result = try await run(config)
        #expect(result.termination == .exited(0), "stderr: \(result.standardErrorString)")
        #expect(result.standardOutputString == "everyone\n")

        // Root itself still finds the first one.
        config.credentials = nil
        #expect(try await run(config).standardOutputString == "root-only\n")

        // Only the root-only file: step resolve, EACCES, for the child's uid.
        config.environment = .custom(["PATH": dir.file("a")])
        config.credentials = Credentials(userID: 65534, groupID: 65534)
        let error = await expectSpawnError { _ = try await run(config) }
        #expect(error?.step == "resolve")
        #expect(error?.errno == EACCES)
    }

    /// Group execute bits count for the child's group and supplementary groups.
    @Test func groupExecuteBit() throws {
        var st = stat()
        st.st_uid = 0
        st.st_gid = 100
        st.st_mode = S_IFREG | 0o710
        let member = ChildIdentity(Credentials(userID: 65534, groupID: 65534, supplementaryGroups: [100]))
        let other = ChildIdentity(Credentials(userID: 65534, groupID: 65534))
        let root = ChildIdentity(Credentials(userID: 0, groupID: 0))
        #expect(member.mayExecute(st))
        #expect(!other.mayExecute(st))
        #expect(root.mayExecute(st))
        st.st_mode = S_IFREG | 0o644
        #expect(!root.mayExecute(st))
    }
}
