import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A running child, valid inside the body of ``withChildProcess(_:isolation:_:)``.
///
/// Read its output, write its stdin, signal it, end it, await its termination.
/// When the body returns or throws, a child still running is torn down, its
/// pipes are closed and it is reaped: it cannot outlive the scope.
public struct ChildProcess: Sendable {
    let core: ProcessCore
    /// The child's process id.
    public var processID: Int32 { core.pid }
    /// The child's process group id, or nil when it stayed in this process's group.
    public var processGroupID: Int32? { core.group }
    /// The child's stdout (empty unless ``Configuration/standardOutput`` is `.pipe`).
    public let standardOutput: ChildOutput
    /// The child's stderr (empty unless ``Configuration/standardError`` is `.pipe`).
    public let standardError: ChildOutput
    /// The child's stdin (usable when ``Configuration/standardInput`` is `.pipe`).
    public let standardInput: StandardInputWriter

    /// Sends `signal` to the child alone (by pidfd, so never to a reused pid).
    public func send(_ signal: Signal) throws {
        let r = core.signalChild(signal)
        if r < 0 { throw SpawnError.system("kill", -r, code: .io) }
    }

    /// Sends `signal` to the child's whole process group (or the child alone
    /// with ``ProcessGroup/inherit``). Only while the child, the group's leader,
    /// has not been reaped: after that its group id may name an unrelated group,
    /// and this throws (`ESRCH`) without signalling anything.
    public func sendToGroup(_ signal: Signal) throws {
        if core.ownGroup {
            let r = core.signalGroup(signal)
            if r < 0 { throw SpawnError.system("kill", -r, code: .io) }
        } else {
            try send(signal)
        }
    }

    /// Ends the child with the configured ``Teardown`` (first signal to the group,
    /// grace, SIGKILL) and returns once it has been reaped and what it left in its
    /// group has been torn down.
    public func terminate() async {
        await core.tearDownAndWait(.terminated)
    }

    /// Waits for the child to end, then for what it left in its group to be torn
    /// down, and returns its termination. If the task is cancelled meanwhile, the
    /// child is torn down (outcome ``Outcome/cancelled``) and this returns once it
    /// is reaped. Throws ``SpawnError/Code/statusLost`` when another part of the
    /// process reaped the child first.
    public func wait() async throws -> Termination {
        try await waitForReport().termination
    }

    /// Like ``wait()``, returning the full report (outcome and usage).
    public func waitForReport() async throws -> ProcessReport {
        if !(await core.waitSettled(cancellable: true)) {
            // Cancelled: tear down, and wait (uncancellably) for the reap.
            await core.tearDownAndWait(.cancelled)
        }
        return try core.report()
    }
}

/// Starts a child and runs `body` with it. When `body` returns or throws, a
/// child still running is torn down with the configured ``Teardown``, its group
/// is cleaned up, its pipes are closed and it is reaped; only then does this
/// return (or rethrow). Returns the body's value and the child's report.
///
/// ```swift
/// var config = Configuration(executable: "seq", arguments: ["1", "3"])
/// let (lines, report) = try await withChildProcess(config) { child in
///     var lines: [String] = []
///     for try await line in child.standardOutput.lines { lines.append(line) }
///     return lines
/// }
/// ```
///
/// - Throws: ``SpawnError`` when the child cannot be started (before `body` runs),
///   whatever `body` throws, or `CancellationError`.
public func withChildProcess<Result: Sendable>(
    _ configuration: Configuration,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ChildProcess) async throws -> Result
) async throws -> (value: Result, report: ProcessReport) {
    let launched = try await Launcher.launch(configuration)
    let child = launched.child
    if Task.isCancelled {
        // Cancelled while the child was being created (possibly stuck before its
        // exec, and killed there): torn down, reaped, not handed to `body`.
        await child.core.tearDownAndWait(.cancelled)
        launched.close()
        throw CancellationError()
    }
    do {
        let value = try await body(child)
        await child.core.tearDownAndWait(.terminated)  // nothing to do if it has exited
        launched.close()
        let report = try child.core.report()
        return (value, report)
    } catch {
        let reason: TeardownReason = Task.isCancelled ? .cancelled : .terminated
        await child.core.tearDownAndWait(reason)
        launched.close()
        throw error
    }
}

/// Runs a child to its end and collects everything: its termination, outcome,
/// usage, and both output streams (up to ``Configuration/outputLimit``).
///
/// `input`, when given, is written to the child's stdin (which becomes a pipe),
/// concurrently with reading its output, then closed.
///
/// ```swift
/// let result = try await run(Configuration(executable: "echo", arguments: ["hi"]))
/// print(result.standardOutputString)  // "hi\n"
/// ```
///
/// - Throws: ``SpawnError`` when the child cannot be started or its status was
///   lost; `CancellationError` when the task was cancelled (the child is torn
///   down and reaped first).
public func run(_ configuration: Configuration, input: [UInt8]? = nil) async throws -> RunResult {
    var configuration = configuration
    if input != nil { configuration.standardInput = .pipe }
    // The reactor spawns while this task goes on: the pipes exist already, and
    // a failed spawn is thrown by waitForReport() (one thread hop less per run).
    let launched = try Launcher.start(configuration)
    let child = launched.child
    do {
        // stdout is read by this task; stderr and stdin get a child task only
        // when they are pipes (a task per stream costs a thread hop per spawn).
        let out: [UInt8], err: [UInt8]
        switch (child.standardError.pipe != nil, input) {
        case (false, nil):
            out = try await child.standardOutput.collect()
            err = []
        case (true, nil):
            async let e = child.standardError.collect()
            out = try await child.standardOutput.collect()
            err = try await e
        case (_, let input?):
            async let e = child.standardError.collect()
            async let fed: Void = {
                try? await child.standardInput.write(input)
                child.standardInput.finish()
            }()
            out = try await child.standardOutput.collect()
            err = try await e
            await fed
        }
        let report = try await child.waitForReport()
        try Task.checkCancellation()
        launched.close()
        return RunResult(report: report, standardOutput: out, standardError: err,
                         standardOutputTruncated: child.standardOutput.truncated,
                         standardErrorTruncated: child.standardError.truncated)
    } catch {
        let reason: TeardownReason = Task.isCancelled ? .cancelled : .terminated
        await child.core.tearDownAndWait(reason)
        launched.close()
        throw error
    }
}

/// Runs `executable` with `arguments` under the default configuration and
/// collects its output. See ``run(_:input:)``.
public func run(_ executable: String, _ arguments: [String] = [], input: [UInt8]? = nil) async throws -> RunResult {
    try await run(Configuration(executable: executable, arguments: arguments), input: input)
}
