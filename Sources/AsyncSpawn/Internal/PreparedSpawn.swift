import CSpawn
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The C-side input of one spawn, built entirely in the parent: the resolved
/// path, argv, envp, limits, the fd plan and the filter, in memory owned by this
/// object. The child only reads it.
final class PreparedSpawn: @unchecked Sendable {
    // @unchecked: immutable after init; built on the caller's task, then read only
    // by the reactor's spawn job (which keeps it alive); the caller does not touch
    // it after handing the job over.
    var config = cspawn_config()
    private var allocations: [UnsafeMutableRawPointer] = []

    let path: String

    init(path: String, argv: [String], envp: [String]?, cwd: String?,
         group: ProcessGroup, rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)],
         credentials: Credentials?, deathSignal: Int32,
         fds: [(source: Int32, target: Int32)], noNewPrivs: Bool, bpf: [UInt8]?, testStopBeforeExec: Bool = false) {
        self.path = path
        config.path = UnsafePointer(cString(path))
        config.argv = UnsafePointer(cStringArray(argv))
        config.envp = envp.map { UnsafePointer(cStringArray($0)) }  // nil: environ at the clone
        switch group {
        case .newSession: config.group_mode = Int32(CSPAWN_GROUP_SESSION.rawValue)
        case .newGroup: config.group_mode = Int32(CSPAWN_GROUP_NEW.rawValue)
        case .inherit: config.group_mode = Int32(CSPAWN_GROUP_INHERIT.rawValue)
        }
        let limits = allocate(cspawn_rlimit.self, count: max(rlimits.count, 1))
        for (i, r) in rlimits.enumerated() {
            limits[i] = cspawn_rlimit(resource: r.resource, soft: r.soft, hard: r.hard)
        }
        config.rlimits = UnsafePointer(limits)
        config.rlimit_count = Int32(rlimits.count)
        config.cwd = cwd.map { UnsafePointer(cString($0)) }

        if let credentials {
            let dropping = credentials.userID != nil || credentials.groupID != nil
            if let groups = credentials.supplementaryGroups ?? (dropping ? [] : nil) {
                let g = allocate(gid_t.self, count: max(groups.count, 1))
                for (i, v) in groups.enumerated() { g[i] = v }
                config.set_groups = 1
                config.groups = UnsafePointer(g)
                config.group_count = Int32(groups.count)
            }
            if let gid = credentials.groupID ?? credentials.userID.map(Credentials.primaryGroup(of:)) {
                config.set_gid = 1
                config.gid = gid
            }
            if let uid = credentials.userID {
                config.set_uid = 1
                config.uid = uid
            }
            if config.set_uid != 0 || config.set_gid != 0 || config.set_groups != 0 {
                config.drop_capabilities = 1
                config.last_capability = Capabilities.last
            }
        }
        config.death_signal = deathSignal
        config.parent_pid = getpid()

        let maps = allocate(cspawn_fd_map.self, count: max(fds.count, 1))
        for (i, m) in fds.enumerated() { maps[i] = cspawn_fd_map(source: m.source, target: m.target) }
        config.fds = UnsafePointer(maps)
        config.fd_count = Int32(fds.count)
        let keep = fds.filter { $0.source >= 0 }.map(\.target).sorted()
        let k = allocate(Int32.self, count: max(keep.count, 1))
        for (i, v) in keep.enumerated() { k[i] = v }
        config.keep_fds = UnsafePointer(k)
        config.keep_count = Int32(keep.count)

        config.no_new_privs = noNewPrivs ? 1 : 0
        config.test_stop_before_exec = testStopBeforeExec || TestSwitches.stopBeforeExec ? 1 : 0
        config.test_fallbacks = TestSwitches.forcedFallbacks.load(ordering: .relaxed)
        if let bpf, !bpf.isEmpty {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bpf.count, alignment: 8)
            allocations.append(raw)
            bpf.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: bpf.count) }
            config.bpf = UnsafeRawPointer(raw)
            config.bpf_len = UInt16(bpf.count / 8)
        }
    }

    deinit {
        for p in allocations { p.deallocate() }
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: count)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    private func cString(_ s: String) -> UnsafeMutablePointer<CChar> {
        let utf8 = Array(s.utf8)
        let p = allocate(CChar.self, count: utf8.count + 1)
        for (i, b) in utf8.enumerated() { p[i] = CChar(bitPattern: b) }
        p[utf8.count] = 0
        return p
    }

    private func cStringArray(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = allocate(UnsafeMutablePointer<CChar>?.self, count: strings.count + 1)
        for (i, s) in strings.enumerated() { array[i] = cString(s) }
        array[strings.count] = nil
        return array
    }
}

/// The ids the child will have after its credential steps, for judging in the
/// parent what the child may execute.
struct ChildIdentity {
    var uid: UInt32
    var gid: UInt32
    var groups: [UInt32]

    init(_ credentials: Credentials?) {
        let changing = credentials.map { $0.userID != nil || $0.groupID != nil } ?? false
        uid = credentials?.userID ?? geteuid()
        gid = credentials?.groupID ?? credentials?.userID.map(Credentials.primaryGroup(of:)) ?? getegid()
        if let groups = credentials?.supplementaryGroups {
            self.groups = groups
        } else if changing {
            groups = []
        } else {
            let n = getgroups(0, nil)
            var list = [gid_t](repeating: 0, count: Int(max(n, 0)))
            let got = n > 0 ? getgroups(n, &list) : 0
            groups = Array(list.prefix(Int(max(got, 0))))
        }
    }

    /// Whether a regular file with this mode and owner may be executed by the
    /// child, as the kernel judges it from the mode bits (root: any execute
    /// bit). ACLs and security modules are not consulted: the exec itself then
    /// fails with its own errno, at step `exec`.
    func mayExecute(_ st: stat) -> Bool {
        let mode = st.st_mode
        if uid == 0 { return mode & (S_IXUSR | S_IXGRP | S_IXOTH) != 0 }
        if st.st_uid == uid { return mode & S_IXUSR != 0 }
        if st.st_gid == gid || groups.contains(st.st_gid) { return mode & S_IXGRP != 0 }
        return mode & S_IXOTH != 0
    }
}

/// execvp's search, done in the parent but judged as the child will see it:
/// `name` with a `/` is used as is (the child resolves a relative one against
/// its own working directory, after its `chdir`); otherwise each `PATH` entry
/// (empty = the current directory) is tried and the first regular file the
/// child may execute wins. A relative entry is taken against the child's
/// working directory (`workingDirectory`, when it changes), and "may execute"
/// is judged for the child's uid and groups from the file's mode and owner
/// (``ChildIdentity``), so the parent never picks a file the child would not
/// have found. When only non-executable matches exist the error is EACCES,
/// else ENOENT.
func resolveExecutable(
    _ name: String, path: String?, workingDirectory: String? = nil, identity: @autoclosure () -> ChildIdentity
) throws(SpawnError) -> String {
    if name.contains("/") { return name }
    let identity = identity()
    let search = path ?? "/usr/local/bin:/usr/bin:/bin"
    var sawInaccessible = false
    for dir in search.split(separator: ":", omittingEmptySubsequences: false) {
        var base = dir.isEmpty ? "." : String(dir)
        if !base.hasPrefix("/"), let cwd = workingDirectory {
            base = (cwd.hasSuffix("/") ? cwd : cwd + "/") + base
        }
        let candidate = base.hasSuffix("/") ? base + name : base + "/" + name
        var st = stat()
        guard stat(candidate, &st) == 0 else { continue }
        guard (st.st_mode & S_IFMT) == S_IFREG else { continue }
        if identity.mayExecute(st) { return candidate }
        sawInaccessible = true
    }
    let code: Int32 = sawInaccessible ? EACCES : ENOENT
    throw SpawnError(code: .executableNotFound, step: "resolve", errno: code,
                     message: sawInaccessible
                         ? "resolve: \(name): found in PATH but not executable (errno \(code))"
                         : "resolve: \(name): not found in PATH (errno \(code))")
}

enum Capabilities {
    /// The highest capability number this kernel knows
    /// (`/proc/sys/kernel/cap_last_cap`; 63 when it cannot be read: the child
    /// stops at the first number the kernel refuses).
    static let last: Int32 = {
        let fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 63 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 63 }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).filter { $0.isNumber }
        return Int32(text).map { min($0, 63) } ?? 63
    }()
}

/// Test-only switches. One switch forces every fallback path (for kernels
/// without close_range, ...) although this kernel has the newer call, so that
/// tests can exercise them: the environment variable
/// `ASYNCSPAWN_TEST_FORCE_FALLBACKS=1` sets it at start (CLI tests use that),
/// and library tests set ``forcedFallbacks`` directly.
enum TestSwitches {
    static let forcedFallbacks = Atomic<Int32>({
        guard let value = getenv("ASYNCSPAWN_TEST_FORCE_FALLBACKS"), String(cString: value) == "1" else { return 0 }
        return allFallbacks
    }())

    static let allFallbacks = Int32(CSPAWN_TEST_FALLBACK_CLOSE_RANGE)

    /// `ASYNCSPAWN_TEST_STOP_BEFORE_EXEC=1`: every child stops itself right before
    /// its exec, as an attacker of its uid would stop it (CLI tests of the
    /// pre-exec watchdog; library tests use `Configuration.testStopBeforeExec`).
    static let stopBeforeExec: Bool = {
        guard let value = getenv("ASYNCSPAWN_TEST_STOP_BEFORE_EXEC") else { return false }
        return String(cString: value) == "1"
    }()
}
