import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A child just started, with the parent's pipe ends.
struct Launched: Sendable {
    let child: ChildProcess
    let pipes: [PipeEnd]

    func close() {
        for p in pipes { p.close() }
        child.core.close()
    }
}

/// A prepared spawn, for a spawner thread.
struct SpawnJob: Sendable {
    let body: @Sendable (Spawner.WatchPointer) -> Void
    /// When the watchdog kills a child still stuck before its exec.
    let deadline: ContinuousClock.Instant?
    /// Names the job for Spawner.abort.
    let ticket: Spawner.Ticket
    /// The child's ends of its pipes, closed by `body` once the child exists.
    let childEnds: [Int32]

    /// For a job that never ran: closes what `body` would have closed.
    func abandon() {
        for fd in childEnds { close(fd) }
    }
}

enum Launcher {
    static func validate(_ c: Configuration) throws(SpawnError) {
        if c.executable.isEmpty { throw .invalid("the executable is empty") }
        if c.executable.utf8.contains(0) { throw .invalid("the executable contains a NUL byte") }
        for (i, a) in c.arguments.enumerated() where a.utf8.contains(0) {
            throw .invalid("argument \(i + 1) contains a NUL byte: \(a.debugDescription)")
        }
        if let a0 = c.argument0, a0.utf8.contains(0) { throw .invalid("argv[0] contains a NUL byte") }
        for (name, value) in c.environment.edits {
            if name.isEmpty || name.contains("=") || name.utf8.contains(0) {
                throw .invalid("invalid environment variable name \(name.debugDescription)")
            }
            if let value, value.utf8.contains(0) {
                throw .invalid("environment variable \(name) contains a NUL byte")
            }
        }
        if case .custom(let vars) = c.environment.base {
            for (name, value) in vars {
                if name.isEmpty || name.contains("=") || name.utf8.contains(0) {
                    throw .invalid("invalid environment variable name \(name.debugDescription)")
                }
                if value.utf8.contains(0) { throw .invalid("environment variable \(name) contains a NUL byte") }
            }
        }
        if let cwd = c.workingDirectory, cwd.isEmpty || cwd.utf8.contains(0) {
            throw .invalid("invalid working directory \(cwd.debugDescription)")
        }
        if let limit = c.outputLimit, limit < 0 { throw .invalid("output limit \(limit) is negative") }
        if let t = c.timeout, t < .zero { throw .invalid("timeout \(t) is negative") }
        if c.teardown.grace < .zero { throw .invalid("teardown grace \(c.teardown.grace) is negative") }
        if c.drainTimeout < .zero { throw .invalid("drain timeout \(c.drainTimeout) is negative") }
        if c.preExecDeadline < .zero { throw .invalid("pre-exec deadline \(c.preExecDeadline) is negative") }
        if c.teardown.signal.rawValue < 1 || c.teardown.signal.rawValue > 64 {
            throw .invalid("teardown signal \(c.teardown.signal.rawValue) is not a signal")
        }
        if c.maximumLineLength < 1 { throw .invalid("maximum line length must be positive") }
        var targets = Set<Int32>()
        for m in c.extraFileDescriptors {
            if m.target < 3 { throw .invalid("descriptor target \(m.target): use standardInput/Output/Error for 0, 1, 2") }
            if m.source < 0 { throw .invalid("descriptor source \(m.source) is negative") }
            if fcntl(m.source, F_GETFD) < 0 { throw .invalid("descriptor source \(m.source) is not open") }
            if !targets.insert(m.target).inserted { throw .invalid("descriptor target \(m.target) is mapped twice") }
        }
        if c.extraFileDescriptors.count > 250 { throw .invalid("too many descriptor mappings (at most 250)") }
        if let bpf = c.seccompProgram?.bytes {
            if bpf.isEmpty || bpf.count % 8 != 0 || bpf.count / 8 > 4096 {
                throw .invalid("the seccomp program must hold 1...4096 instructions of 8 bytes (got \(bpf.count) bytes)")
            }
        }
        for source in [c.standardInput] {
            if case .fileDescriptor(let fd) = source, fcntl(fd, F_GETFD) < 0 {
                throw .invalid("stdin descriptor \(fd) is not open")
            }
        }
        for (name, dest) in [("stdout", c.standardOutput), ("stderr", c.standardError)] {
            if case .fileDescriptor(let fd) = dest, fcntl(fd, F_GETFD) < 0 {
                throw .invalid("\(name) descriptor \(fd) is not open")
            }
        }
    }

    /// Starts the child and returns once it exists (or throws why it could not).
    static func launch(_ c: Configuration) async throws(SpawnError) -> Launched {
        let (launched, job) = try prepare(c)
        // A cancellation while the child is stuck before its exec kills it there
        // (through the core's teardown and Spawner.abort), not at its deadline.
        let core = launched.child.core
        let outcome: Result<Void, SpawnError> = await withTaskCancellationHandler {
            do throws(SpawnError) {
                try await Spawner.shared.perform(job.deadline, ticket: job.ticket, job.body)
                return .success(())
            } catch {
                return .failure(error)
            }
        } onCancel: {
            core.beginTeardown(.cancelled)
        }
        do throws(SpawnError) {
            try outcome.get()
        } catch {
            job.abandon()
            launched.close()
            throw error
        }
        if let error = launched.child.core.spawnError {
            launched.close()
            throw error
        }
        return launched
    }

    /// Hands the spawn to the reactor and returns at once: the child may not
    /// exist yet. A spawn failure settles the core with the error, which
    /// ``ProcessCore/report()`` throws; the streams end at once.
    static func start(_ c: Configuration) throws(SpawnError) -> Launched {
        let (launched, job) = try prepare(c)
        do throws(SpawnError) {
            try Spawner.shared.submit(Spawner.Job(body: job.body, deadline: job.deadline, ticket: job.ticket))
        } catch {
            job.abandon()
            launched.close()
            throw error
        }
        return launched
    }

    /// Everything up to the spawn, in the caller: validation, the resolved
    /// executable, the pipes, the C-side input; and the reactor job that spawns.
    private static func prepare(_ c: Configuration) throws(SpawnError) -> (Launched, SpawnJob) {
        try validate(c)
        let reactor = try Reactor.start()
        let rlimits = try c.limits.resolved()
        var bpf = c.seccompProgram?.bytes
        if let filter = c.seccomp {
            let compiled = try filter.compile().bytes
            // Two programs: the kernel can stack filters, but the child loads one,
            // so a raw program given too must be combined by the caller.
            if bpf != nil {
                throw SpawnError.invalid("give either seccomp or seccompProgram, not both")
            }
            bpf = compiled
        }
        let envp: [String]?
        let searchPath: String?
        if case .inherit = c.environment.base, c.environment.edits.isEmpty {
            // This process's environment unchanged: the child gets `environ` as
            // it is at the clone, with nothing copied.
            envp = nil
            searchPath = getenv("PATH").map { String(cString: $0) }
        } else {
            let env = c.environment.resolved()
            envp = env.map { "\($0.0)=\($0.1)" }
            searchPath = env.first(where: { $0.0 == "PATH" })?.1
        }
        let path = try resolveExecutable(
            c.executable, path: searchPath, workingDirectory: c.workingDirectory,
            identity: ChildIdentity(c.credentials))
        let argv = [c.argument0 ?? c.executable] + c.arguments

        // Descriptors created here are all O_CLOEXEC; `toClose` are the child's
        // ends, closed in the parent once the child exists.
        var toClose: [Int32] = []
        var parentEnds: [Int32] = []
        func cleanup() {
            for fd in toClose { Glibc.close(fd) }
            for fd in parentEnds { Glibc.close(fd) }
        }
        var nullFD: Int32 = -1
        func null() throws(SpawnError) -> Int32 {
            if nullFD < 0 { nullFD = try reactor.devNull() }
            return nullFD
        }
        func makePipe(parentReads: Bool) throws(SpawnError) -> (parent: Int32, child: Int32) {
            var fds: [Int32] = [-1, -1]
            let r = fds.withUnsafeMutableBufferPointer { cspawn_pipe($0.baseAddress, parentReads ? 1 : 0, parentReads ? 0 : 1) }
            if r < 0 { throw SpawnError.system("pipe", -r) }
            let parent = parentReads ? fds[0] : fds[1]
            let child = parentReads ? fds[1] : fds[0]
            parentEnds.append(parent)
            toClose.append(child)
            return (parent, child)
        }

        var plan: [(source: Int32, target: Int32)] = []
        var stdinEnd: Int32 = -1, stdoutEnd: Int32 = -1, stderrEnd: Int32 = -1
        do {
            switch c.standardInput {
            case .pipe:
                let p = try makePipe(parentReads: false)
                stdinEnd = p.parent
                plan.append((p.child, 0))
            case .null: plan.append((try null(), 0))
            case .inherit: plan.append((0, 0))
            case .fileDescriptor(let fd): plan.append((fd, 0))
            }
            for (target, dest) in [(Int32(1), c.standardOutput), (Int32(2), c.standardError)] {
                switch dest {
                case .pipe:
                    let p = try makePipe(parentReads: true)
                    if target == 1 { stdoutEnd = p.parent } else { stderrEnd = p.parent }
                    plan.append((p.child, target))
                case .null: plan.append((try null(), target))
                case .inherit: plan.append((target, target))
                case .fileDescriptor(let fd): plan.append((fd, target))
                }
            }
        } catch {
            cleanup()
            throw error
        }
        for m in c.extraFileDescriptors { plan.append((m.source, m.target)) }

        let prepared = PreparedSpawn(
            path: path, argv: argv, envp: envp, cwd: c.workingDirectory, group: c.processGroup,
            rlimits: rlimits, credentials: c.credentials, deathSignal: c.dieWithParent ? SIGKILL : 0,
            fds: plan, noNewPrivs: c.noNewPrivileges || bpf != nil, bpf: bpf,
            testStopBeforeExec: c.testStopBeforeExec)

        // The CPU time at which the kernel sends SIGKILL: the hard limit, or the
        // soft one when the hard is unlimited (then only SIGXCPU comes).
        let cpu = rlimits.first(where: { $0.resource == 0 /* RLIMIT_CPU */ })
        let cpuSoft = cpu.map { $0.hard < UInt64.max ? $0.hard : $0.soft }

        // The parent's ends, registered with the core before the child can exit
        // (the reactor arms the drain deadline for them when it settles).
        var pipes: [PipeEnd] = []
        func end(_ fd: Int32) -> PipeEnd? {
            guard fd >= 0 else { return nil }
            let p = PipeEnd(fd: fd)
            pipes.append(p)
            return p
        }
        let out = end(stdoutEnd), err = end(stderrEnd), input = end(stdinEnd)
        parentEnds.removeAll()  // owned by the PipeEnds now

        let started = ContinuousClock.now
        let core = ProcessCore(configuration: c, cpuSoftLimitSeconds: cpuSoft, started: started, streams: pipes)
        let childEnds = toClose
        let workingDirectory = c.workingDirectory
        // The deadline of a child stuck before its exec (stopped by another
        // process of its uid, say): its timeout when that comes first, else the
        // pre-exec deadline; both from the start of the spawn. Past it the
        // spawner's watchdog kills the child (Spawner, cspawn_watch_kill).
        let timeout = c.timeout.flatMap { $0 < Reactor.never ? $0 : nil }
        let preExec = c.preExecDeadline < Reactor.never ? c.preExecDeadline : nil
        let timeoutFirst = timeout.map { t in preExec.map { t <= $0 } ?? true } ?? false
        let deadline = (timeoutFirst ? timeout : preExec).map { started + $0 }
        // The spawn runs on a spawner thread, which never exits: PR_SET_PDEATHSIG
        // (tied to the creating thread) fires only when this process dies.
        let body: @Sendable (Spawner.WatchPointer) -> Void = { watch in
            var result = cspawn_result()
            // ETXTBSY from execve is, almost always, another spawn's child (of any
            // thread, any library) holding a write descriptor of a freshly written
            // executable until its own exec closes it: gone a moment later. Five
            // tries, 0.1, 0.2, 0.4 and 0.8 ms apart (back to back, they could all
            // fall inside that moment); then the error is reported.
            for attempt in 0..<5 {
                if attempt > 0 { Self.pause(microseconds: 100 << (attempt - 1)) }
                withExtendedLifetime(prepared) {
                    _ = withUnsafePointer(to: &prepared.config) { cspawn_spawn_watched($0, &result, watch.pointer) }
                }
                guard result.step == Int32(CSPAWN_STEP_EXEC.rawValue) && result.error == ETXTBSY else { break }
            }
            for fd in childEnds { Glibc.close(fd) }
            guard result.step == Int32(CSPAWN_STEP_NONE.rawValue) else {
                core.spawnFailed(spawnError(result, path: path, workingDirectory: workingDirectory))
                return
            }
            let killed = cspawn_watch_killed(watch.pointer) != 0
            if killed && !timeoutFirst && !core.teardownRequested {
                // Killed at the pre-exec deadline, with no timeout before it: the
                // spawn failed. Reap the child (dead: SIGKILL) and say so.
                var code: Int32 = 0, status: Int32 = 0, user: Int64 = 0, system: Int64 = 0, rss: Int64 = 0
                _ = cspawn_wait(result.pid, result.pidfd, 0, &code, &status, &user, &system, &rss)
                if result.pidfd >= 0 { Glibc.close(result.pidfd) }
                core.spawnFailed(SpawnError(
                    code: .childSetupFailed, step: "exec", errno: ETIMEDOUT,
                    message: "exec \(path): the child did not reach its exec within the pre-exec deadline of "
                        + "\(c.preExecDeadline) (it was stopped or stuck) and was killed (errno \(ETIMEDOUT))"))
                return
            }
            if killed && !core.teardownRequested {
                // Killed at its timeout before its exec: a timed-out run. (Killed
                // because the run was torn down, cancelled say: that teardown's
                // reason is already recorded.)
                core.beginTeardown(.timeout)
            }
            core.spawned(pid: result.pid, pidfd: result.pidfd)
            Reactor.shared.watchExit(pid: result.pid, pidfd: result.pidfd, willReap: { core.willReap() }) {
                core.exited($0)
            }
            // The timeout counts from the start of the spawn.
            if let timeout { core.armTimeout(max(.zero, timeout - (ContinuousClock.now - started))) }
        }
        let ticket = Spawner.Ticket()
        core.setAbortSpawn { Spawner.shared.abort(ticket) }
        let job = SpawnJob(body: body, deadline: deadline, ticket: ticket, childEnds: childEnds)
        let child = ChildProcess(
            core: core,
            standardOutput: ChildOutput(pipe: out, core: core, limit: c.outputLimit, maximumLineLength: c.maximumLineLength),
            standardError: ChildOutput(pipe: err, core: core, limit: c.outputLimit, maximumLineLength: c.maximumLineLength),
            standardInput: StandardInputWriter(pipe: input, core: core))
        return (Launched(child: child, pipes: pipes), job)
    }

    /// Sleeps the calling (spawner) thread.
    private static func pause(microseconds: Int) {
        var request = timespec(tv_sec: 0, tv_nsec: microseconds * 1000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    private static func spawnError(_ result: cspawn_result, path: String, workingDirectory: String?) -> SpawnError {
        let step = String(cString: cspawn_step_name(result.step))
        let childSide = result.step >= Int32(CSPAWN_STEP_SIGNALS.rawValue) && result.step != Int32(CSPAWN_STEP_REPORT.rawValue)
        let e = result.error
        var message = "\(step): \(SpawnError.describe(errno: e)) (errno \(e))"
        if step == "exec" { message = "exec \(path): \(SpawnError.describe(errno: e)) (errno \(e))" }
        if step == "chdir", let cwd = workingDirectory { message = "chdir \(cwd): \(SpawnError.describe(errno: e)) (errno \(e))" }
        return SpawnError(code: childSide ? .childSetupFailed : .spawnFailed, step: step, errno: e, message: message)
    }
}
