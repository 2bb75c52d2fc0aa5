// Failures: each child setup step reports its step and errno; invalid
// configurations are rejected before any child exists.

import AsyncSpawn
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(Gate.shared)
struct StepFailureTests {
    @Test func chdirToAMissingDirectory() async throws {
        var config = Probe.config("exit", "0")
        config.workingDirectory = "/nonexistent/asyncspawn-test"
        let error = await expectSpawnError { _ = try await run(config) }
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "chdir")
        #expect(error?.errno == ENOENT)
        #expect(error?.message.contains("No such file or directory") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("errno 2") == true, "\(error?.message ?? "")")
    }

    @Test func chdirToAFile() async throws {
        var config = Probe.config("exit", "0")
        config.workingDirectory = Probe.path
        let error = await expectSpawnError { _ = try await run(config) }
        #expect(error?.step == "chdir")
        #expect(error?.errno == ENOTDIR)
    }

    @Test func execOfANonExecutableFile() async throws {
        let dir = TempDir()
        let path = dir.file("plain")
        _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\nexit 0\n".utf8),
                                       attributes: [.posixPermissions: 0o644])
        let error = await expectSpawnError { _ = try await run(path) }
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "exec")
        #expect(error?.errno == EACCES)
    }

    /// A file with the exec bit and garbage content: ENOEXEC, with no fallback
    /// to /bin/sh.
    @Test func execOfGarbage() async throws {
        let dir = TempDir()
        let path = dir.file("garbage")
        _ = FileManager.default.createFile(atPath: path, contents: Data([0x00, 0x01, 0x02, 0xff, 0xfe, 0x7f, 0x45]),
                                       attributes: [.posixPermissions: 0o755])
        let error = await expectSpawnError { _ = try await run(path) }
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "exec")
        #expect(error?.errno == ENOEXEC)
    }

    @Test func execOfAMissingPath() async throws {
        let error = await expectSpawnError { _ = try await run("/nonexistent/asyncspawn-test-binary") }
        #expect(error?.code == .childSetupFailed)
        #expect(error?.step == "exec")
        #expect(error?.errno == ENOENT)
    }

    @Test func executableNotInPATH() async throws {
        let error = await expectSpawnError { _ = try await run("asyncspawn-no-such-program-\(getpid())") }
        #expect(error?.code == .executableNotFound)
        #expect(error?.step == "resolve")
        #expect(error?.errno == ENOENT)
    }

    /// PATH search skips matches that are not executable; when only such
    /// matches exist the error is EACCES.
    @Test func pathSearchSkipsNonExecutables() async throws {
        let first = TempDir(), second = TempDir()
        _ = FileManager.default.createFile(atPath: first.file("tool"), contents: Data("x".utf8),
                                       attributes: [.posixPermissions: 0o644])
        var config = Configuration(executable: "tool", arguments: ["exit", "7"])
        config.environment = Environment.inherit.setting("PATH", to: "\(first.path):\(second.path)")
        let error = await expectSpawnError { _ = try await run(config) }
        #expect(error?.code == .executableNotFound)
        #expect(error?.step == "resolve")
        #expect(error?.errno == EACCES)

        try copyExecutable(Probe.path, to: second.file("tool"))
        let result = try await run(config)
        #expect(result.termination == .exited(7))
    }
}

@Suite(Gate.shared)
struct InvalidConfigurationTests {
    private func rejected(_ config: Configuration, sourceLocation: SourceLocation = #_sourceLocation) async {
        let error = await expectSpawnError({ _ = try await run(config) }, sourceLocation: sourceLocation)
        #expect(error?.code == .invalidConfiguration, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    @Test func emptyExecutable() async {
        await rejected(Configuration(executable: ""))
    }

    @Test func nulInArgument() async {
        await rejected(Probe.config("env", "A\u{0}B"))
    }

    @Test func nulInExecutable() async {
        await rejected(Configuration(executable: "/bin/tr\u{0}ue"))
    }

    @Test func nulInEnvironmentValue() async {
        var config = Probe.config("exit", "0")
        config.environment = Environment.inherit.setting("X", to: "a\u{0}b")
        await rejected(config)
        config.environment = .custom(["X": "a\u{0}b"])
        await rejected(config)
    }

    @Test func badEnvironmentName() async {
        var config = Probe.config("exit", "0")
        config.environment = Environment.inherit.setting("A=B", to: "c")
        await rejected(config)
        config.environment = Environment.inherit.setting("", to: "c")
        await rejected(config)
    }

    @Test func negativeDurationsAndLimits() async {
        var config = Probe.config("exit", "0")
        config.outputLimit = -1
        await rejected(config)
        config = Probe.config("exit", "0")
        config.timeout = .seconds(-1)
        await rejected(config)
        config = Probe.config("exit", "0")
        config.teardown = Teardown(signal: .terminate, grace: .seconds(-1))
        await rejected(config)
    }

    @Test func badDescriptorMappings() async {
        var config = Probe.config("exit", "0")
        config.extraFileDescriptors = [FileDescriptorMapping(source: 0, target: 1)]
        await rejected(config)
        config.extraFileDescriptors = [FileDescriptorMapping(source: 987_654, target: 5)]
        await rejected(config)
        config.extraFileDescriptors = [FileDescriptorMapping(source: 0, target: 5), FileDescriptorMapping(source: 1, target: 5)]
        await rejected(config)
    }

    /// No child is created for a rejected configuration: with a marker argument
    /// that would show up in /proc, nothing ever appears and nothing is reaped.
    @Test func nothingIsSpawnedForAnInvalidConfiguration() async throws {
        let marker = "asyncspawn-invalid-\(UUID().uuidString)"
        var config = Probe.config("sleep", "5", marker)
        config.limits.openFiles = Limit(soft: .value(100), hard: .value(10))
        let error = await expectSpawnError { _ = try await run(config) }
        #expect(error?.code == .invalidConfiguration)
        #expect(Proc.processes(withArgument: marker).isEmpty)
    }
}
