import AsyncSpawn
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Which of the child's streams a chunk came from.
public enum OutputStream: String, Sendable {
    case stdout
    case stderr
}

/// Something that happened during a run, for streaming clients.
public enum RunEvent: Sendable {
    /// The child exists (its pid).
    case started(pid: Int32)
    /// A chunk of output, as one read returned it.
    case output(OutputStream, [UInt8])
}

/// Runs jobs with AsyncSpawn, each in a scratch directory of its own, under the
/// request's limits and the server's fixed restrictions.
public struct Sandbox: Sendable {
    let settings: ServerSettings
    /// The scratch root (open and checked).
    let scratchRoot: ScratchRoot
    /// Interpreter paths by language; a language missing here is not available.
    var interpreters: [Language: String]
    /// The user ids runs get, one of its own per run (nil: the server's own ids,
    /// when it is not root).
    let users: UserPool?
    let logger: Logger

    /// How long removal waits for a run's killed processes to be gone before it
    /// goes ahead anyway (they have SIGKILL pending and run no code of theirs).
    static let groupExitBound: Duration = .seconds(10)

    init(settings: ServerSettings, scratchRoot: ScratchRoot, logger: Logger, interpreters: [Language: String] = [:]) {
        self.settings = settings
        self.scratchRoot = scratchRoot
        self.logger = logger
        self.interpreters = interpreters
        self.users = geteuid() == 0 ? UserPool(settings.sandboxUserIDs) : nil
    }

    /// The system-call filter of every run:
    /// - `noNetwork`: no sockets but AF_UNIX (the point of the exercise);
    /// - `noProcessInspection`: no ptrace / process_vm_* / kcmp / pidfd_getfd (each run
    ///   has a uid of its own, which already keeps it from another run's processes;
    ///   this is a second wall, and the only one when the server is not root);
    /// - `noAdministration`: mounts, namespaces, modules, bpf, perf (refused to an
    ///   unprivileged uid anyway; this also covers a server not running as root);
    /// - `setsid` and `setpgid` refused: a process of the run cannot leave the run's
    ///   process group, so the group teardown (timeout, limits, cancellation, exit)
    ///   reaches everything the run started. (The library makes the child a session
    ///   leader before the filter is loaded.)
    /// - `kill(-1, …)` refused: a run cannot signal every process of its uid at once
    ///   (with a server that is not root, the server's own uid).
    /// Not `noNewProcesses` (sh needs fork; RLIMIT_NPROC bounds it), nor
    /// `readOnlyFilesystem` (a run may write scratch files, bounded by RLIMIT_FSIZE).
    static let filter: SeccompFilter = {
        var filter = SeccompFilter.preset(.noNetwork)
            .merging(.preset(.noProcessInspection))
            .merging(.preset(.noAdministration))
            .merging(.deny(["setsid", "setpgid"]))
        // pid -1 as a 32-bit int, however the upper half of the register was filled.
        filter.rules.append(
            SeccompRule(
                "kill", .errno(EPERM),
                when: [
                    SeccompCondition(argument: 0, .maskedEqual(mask: 0xFFFF_FFFF), 0xFFFF_FFFF)
                ]))
        return filter
    }()

    /// The AsyncSpawn configuration for one run.
    func configuration(
        executable: String, arguments: [String], directory: String, limits: RunLimits, user: UInt32?
    ) -> Configuration {
        var config = Configuration(executable: executable, arguments: arguments)
        config.workingDirectory = directory
        config.environment = .custom([
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": directory,
            "TMPDIR": directory,
            "LANG": "C.UTF-8",
        ])
        config.processGroup = .newSession
        if let user {
            config.credentials = Credentials(userID: user, groupID: user, supplementaryGroups: [])
            // Per user and not enforced for root: only meaningful with the uid drop.
            config.limits.processes = .count(UInt64(settings.processLimit))
        }
        // Soft limit: SIGXCPU (outcome cpu_limit); the hard limit one second later: SIGKILL.
        config.limits.cpuTime = Limit(
            soft: .value(UInt64(limits.cpuSeconds)), hard: .value(UInt64(limits.cpuSeconds) + 1))
        config.limits.addressSpace = .bytes(UInt64(limits.memoryBytes))
        config.limits.fileSize = .bytes(UInt64(settings.fileSizeLimit))
        config.limits.openFiles = .count(UInt64(settings.openFilesLimit))
        config.limits.coreFileSize = .bytes(0)
        config.timeout = .milliseconds(Int64((limits.wallSeconds * 1000).rounded(.up)))
        config.outputLimit = limits.outputBytes
        // Untrusted code gets no grace: SIGKILL to the whole group at once on timeout,
        // output limit or cancellation (a client that went away).
        config.teardown = .immediate
        config.dieWithParent = true
        config.noNewPrivileges = true
        config.seccomp = Sandbox.filter
        return config
    }

    /// Runs a job to its end: its report, or a `spawn_failed` report when the child
    /// could not be started. `onEvent` sees output chunks as they are read.
    /// Cancellation tears the child's group down at once and throws `CancellationError`
    /// once the child is reaped; the scratch directory is removed in every case,
    /// after the run's processes are gone (see ``release(_:group:)``).
    func run(_ job: RunJob, onEvent: (@Sendable (RunEvent) -> Void)? = nil) async throws -> RunReport {
        guard let interpreter = interpreters[job.language] else {
            throw BadRequest("language '\(job.language.rawValue)' is not available on this server")
        }
        // A uid of its own for this run, back to the pool once its directory is gone.
        let user = try users.map { pool throws -> UInt32 in
            guard let uid = pool.acquire() else {
                throw BadRequest("no free user id in the pool \(pool.range) (runs that left processes behind?)")
            }
            return uid
        }
        defer { if let user { users?.release(user) } }
        let scratch = try ScratchDirectory.create(in: scratchRoot, owner: user.map { ($0, $0) })
        var leader: Int32? = nil
        let outcome: Result<RunReport, any Error>
        do {
            try scratch.writeFile(job.language.fileName, Array(job.source.utf8))
            var config = configuration(
                executable: interpreter,
                arguments: job.language.arguments(sourcePath: "\(scratch.path)/\(job.language.fileName)"),
                directory: scratch.path, limits: job.limits, user: user)
            let stdin = job.stdin
            if stdin != nil { config.standardInput = .pipe }
            let (collected, report) = try await withChildProcess(config) { child in
                leader = child.processID
                onEvent?(.started(pid: child.processID))
                return try await withThrowingTaskGroup(of: Void.self) { group in
                    if let stdin {
                        // Never outlives the child: cancelled once the child has ended
                        // (it may not read its stdin at all).
                        group.addTask {
                            try? await child.standardInput.write(stdin)
                            child.standardInput.finish()
                        }
                    }
                    async let out = Sandbox.read(child.standardOutput, .stdout, onEvent)
                    async let err = Sandbox.read(child.standardError, .stderr, onEvent)
                    _ = try await child.waitForReport()
                    group.cancelAll()
                    let (o, e) = try await (out, err)
                    try Task.checkCancellation()
                    return (o, e, child.standardOutput.truncated, child.standardError.truncated)
                }
            }
            outcome = .success(
                RunReport(
                    report: report, stdout: collected.0, stderr: collected.1,
                    stdoutTruncated: collected.2, stderrTruncated: collected.3, limits: job.limits))
        } catch let error as SpawnError where Sandbox.isSpawnFailure(error) {
            outcome = .success(RunReport(spawnFailure: error, limits: job.limits))
        } catch {
            outcome = .failure(error)
        }
        await release(scratch, group: leader)
        return try outcome.get()
    }

    /// Removes a run's scratch directory: once no process of the run's group
    /// (`group`, the first process's pid; nil when none was started) is alive,
    /// on ``ScratchRemover``'s thread, walking by descriptor (``TreeRemoval``).
    /// The caller's task waits without holding a thread of the pool.
    func release(_ scratch: ScratchDirectory, group: Int32?) async {
        if let group, await !RunGroup.waitUntilEmpty(group, within: Sandbox.groupExitBound) {
            logger.warning(
                "processes of group \(group) still exist \(Sandbox.groupExitBound) after their SIGKILL; removing \(scratch.path) anyway"
            )
        }
        let problems = await ScratchRemover.shared.perform { scratch.removeNow() }
        if !problems.isEmpty {
            logger.error("\(scratch.path) was not entirely removed: \(problems)")
        }
    }

    static func isSpawnFailure(_ error: SpawnError) -> Bool {
        error.code == .executableNotFound || error.code == .childSetupFailed || error.code == .spawnFailed
    }

    private static func read(
        _ output: ChildOutput, _ stream: OutputStream,
        _ onEvent: (@Sendable (RunEvent) -> Void)?
    ) async throws -> [UInt8] {
        var all: [UInt8] = []
        for try await chunk in output {
            all.append(contentsOf: chunk)
            onEvent?(.output(stream, chunk))
        }
        return all
    }
}
