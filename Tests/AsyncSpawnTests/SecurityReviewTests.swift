// Defects of the security review (issue 11) that concern the child's
// credentials and its failure path. Each test says what it did on the main of
// 2026-12-03, before the fix.
@testable import AsyncSpawn
import CSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct DefaultGroupTests {
    /// Defect 2: a user id alone kept the parent's gid (0 here); now the user's
    /// primary group, and no supplementary groups.
    @Test func userIDAloneTakesThePrimaryGroup() async throws {
        let nobody = try #require(UnusedUser.passwdEntry(65534), "no passwd entry for 65534")
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534)
        let (report, result) = try await probeReport(config)
        #expect(result.termination == .exited(0), "stderr \(result.standardErrorString)")
        #expect(report["uid"] == "65534")
        #expect(report["gid"] == "\(nobody.primaryGroup)")
        #expect(report["groups"] == "")
    }

    /// Defect 2: a user id with no passwd entry gets the group of the same number.
    @Test func userIDWithoutEntryTakesTheSameNumber() async throws {
        let id = try UnusedUser.next()
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: id)
        let (report, result) = try await probeReport(config)
        #expect(result.termination == .exited(0), "stderr \(result.standardErrorString)")
        #expect(report["uid"] == "\(id)")
        #expect(report["gid"] == "\(id)")
    }

    /// An explicit group id still wins.
    @Test func explicitGroupID() async throws {
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534, groupID: 100)
        let (report, _) = try await probeReport(config)
        #expect(report["gid"] == "100")
    }
}

@Suite(Gate.shared)
struct FailurePathTests {
    /// Defect 7: with exit_group (and exit) denied, an exec that fails left the
    /// child spinning on the refused exit_group at 100 % CPU and the spawning
    /// thread blocked for good (this test hit its deadline). The report keeps the
    /// exec's own errno.
    @Test(arguments: [["exit_group"], ["exit_group", "exit"], ["exit_group", "exit", "kill", "pidfd_send_signal", "getpid"]])
    func refusedExitAfterAFailedExec(denied: [String]) async throws {
        let dir = TempDir()
        let garbage = dir.file("garbage")
        _ = FileManager.default.createFile(atPath: garbage, contents: Data([0x00, 0x01, 0x02, 0xff, 0xfe]),
                                           attributes: [.posixPermissions: 0o755])
        var config = Configuration(executable: garbage)
        config.seccomp = .deny(denied)
        config.limits.coreFileSize = .bytes(0)
        let error = try await withDeadline(TestTime.hang, "a spawn whose child cannot exit") { [config] in
            await expectSpawnError { _ = try await run(config) }
        }
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "exec")
        #expect(error?.errno == ENOEXEC)

        var denyExec = Configuration(executable: "/bin/true")
        denyExec.seccomp = .deny(denied + ["execve"])
        let refused = try await withDeadline(TestTime.hang, "a spawn whose child cannot exec nor exit") { [denyExec] in
            await expectSpawnError { _ = try await run(denyExec) }
        }
        #expect(refused?.step == "exec")
        #expect(refused?.errno == EPERM)
        // And the library still spawns.
        #expect(try await run("/bin/true").termination == .exited(0))
    }
}

@Suite(Gate.exclusive, .serialized)
struct DumpableTests {
    /// Defect 10: a credential change in the CLONE_VM child made this process
    /// non-dumpable (PR_GET_DUMPABLE went from 1 to 0 after the first uid drop).
    @Test func credentialChangeLeavesTheParentDumpable() async throws {
        let before = cspawn_get_dumpable()
        #expect(before == 1)
        var config = Configuration(executable: Probe.worldExecutableCopy)
        for credentials in [Credentials(userID: 65534, groupID: 65534), Credentials(groupID: 65534),
                            Credentials(userID: 65534)] {
            config.credentials = credentials
            _ = try await probeReport(config)
            #expect(cspawn_get_dumpable() == before, "after \(credentials)")
        }
    }

    /// The saved value is restored, not forced to 1: a server that chose 0 keeps it.
    @Test func chosenZeroStaysZero() async throws {
        #expect(cspawn_set_dumpable(0) == 0)
        defer { _ = cspawn_set_dumpable(1) }
        var config = Configuration(executable: Probe.worldExecutableCopy)
        config.credentials = Credentials(userID: 65534, groupID: 65534)
        _ = try await probeReport(config)
        #expect(cspawn_get_dumpable() == 0)
    }
}
