import AsyncSpawn
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Finds the interpreters once, at startup.
///
/// `python3` in PATH may be a wrapper (pyenv's shim is a bash script that forks,
/// and it lives under /root, which the sandbox user cannot enter), so the server
/// asks it for `sys.executable`, then keeps the first candidate that really runs
/// inside the sandbox: as the sandbox user, under the default limits and the
/// seccomp filter. Running every request through a shim would also cost a fork
/// and a bash start per run.
enum Interpreters {
    static func resolve(sandbox: Sandbox, explicitPython: String?, logger: Logger) async -> [Language: String] {
        var found: [Language: String] = [:]

        var pythonCandidates: [String] = []
        if let explicitPython {
            pythonCandidates = [explicitPython]
        } else {
            if let real = await executableOfPATHPython() { pythonCandidates.append(real) }
            pythonCandidates += ["/usr/local/bin/python3", "/usr/bin/python3"]
        }
        var seen = Set<String>()
        for candidate in pythonCandidates where seen.insert(candidate).inserted {
            switch await probe(
                sandbox, executable: candidate, arguments: ["-I", "-c", "import sys; print(sys.executable)"])
            {
            case .success:
                found[.python3] = candidate
            case .failure(let why):
                logger.info("python3 candidate \(candidate) does not run in the sandbox: \(why)")
                continue
            }
            break
        }
        if found[.python3] == nil {
            logger.warning("no usable python3: requests for it get 400 (give one with --python)")
        }

        switch await probe(sandbox, executable: "/bin/sh", arguments: ["-c", "exit 0"]) {
        case .success: found[.sh] = "/bin/sh"
        case .failure(let why): logger.warning("/bin/sh does not run in the sandbox: \(why)")
        }
        return found
    }

    /// `python3 -c 'import sys; print(sys.executable)'` through PATH, as the server,
    /// outside the sandbox (a shim needs its own environment to find the interpreter).
    static func executableOfPATHPython() async -> String? {
        var config = Configuration(executable: "python3", arguments: ["-c", "import sys; print(sys.executable)"])
        config.timeout = .seconds(20)
        config.outputLimit = 64 << 10
        guard let result = try? await run(config), result.termination == .exited(0) else { return nil }
        let path = result.standardOutputString.trimmingCharacters(in: .whitespacesAndNewlines)
        return path.hasPrefix("/") ? path : nil
    }

    enum ProbeResult {
        case success
        case failure(String)
    }

    /// Runs `executable` the way a request would run (sandbox user, default limits,
    /// seccomp filter) in a scratch directory of its own.
    static func probe(_ sandbox: Sandbox, executable: String, arguments: [String]) async -> ProbeResult {
        guard access(executable, X_OK) == 0 else { return .failure("not an executable file") }
        // The probe runs as a run would: as a uid of the pool.
        let user = sandbox.users.flatMap { $0.acquire() }
        if sandbox.users != nil && user == nil { return .failure("no free user id in the pool") }
        defer { if let user { sandbox.users?.release(user) } }
        let scratch: ScratchDirectory
        do {
            scratch = try ScratchDirectory.create(in: sandbox.scratchRoot, owner: user.map { ($0, $0) })
        } catch {
            return .failure("\(error)")
        }
        var limits = sandbox.settings.defaults
        limits.wallSeconds = max(limits.wallSeconds, 10)
        limits.cpuSeconds = max(limits.cpuSeconds, 5)
        let config = sandbox.configuration(
            executable: executable, arguments: arguments,
            directory: scratch.path, limits: limits, user: user)
        let result: RunResult
        do {
            result = try await run(config)
        } catch {
            await sandbox.release(scratch, group: nil)
            return .failure("\(error)")
        }
        await sandbox.release(scratch, group: result.processID)
        if result.termination == .exited(0) { return .success }
        return .failure("\(result.outcome.rawValue) \(result.termination): \(result.standardErrorString.prefix(300))")
    }
}
