import CSeccomp

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a seccomp rule (or the filter's default) does with a system call.
public enum SeccompAction: Sendable, Hashable {
    /// Let the call through.
    case allow
    /// Fail the call with this errno, without running it.
    case errno(Int32)
    /// Kill the whole process, as if by `SIGSYS` (outcome ``Outcome/seccompViolation``).
    case killProcess
    /// Send `SIGSYS` to the calling thread (it may handle it).
    case trap
    /// Allow the call and log it to the kernel audit log.
    case log

    var raw: UInt32 {
        switch self {
        case .allow: cseccomp_act_allow()
        case .errno(let e): cseccomp_act_errno(UInt16(truncatingIfNeeded: e))
        case .killProcess: cseccomp_act_kill_process()
        case .trap: cseccomp_act_trap()
        case .log: cseccomp_act_log()
        }
    }
}

/// A comparison of one system-call argument, as libseccomp models it.
public struct SeccompCondition: Sendable, Hashable {
    /// How the argument is compared to ``value``.
    public enum Comparison: Sendable, Hashable {
        /// `argument == value`.
        case equal
        /// `argument != value`.
        case notEqual
        /// `argument < value` (unsigned).
        case less
        /// `argument <= value` (unsigned).
        case lessOrEqual
        /// `argument > value` (unsigned).
        case greater
        /// `argument >= value` (unsigned).
        case greaterOrEqual
        /// `(argument & mask) == value`.
        case maskedEqual(mask: UInt64)
    }
    /// The argument's index, 0...5.
    public var argument: Int
    /// The comparison.
    public var comparison: Comparison
    /// The value compared against (for ``Comparison/maskedEqual(mask:)``, after masking).
    public var value: UInt64

    /// `argument` compared with `value`.
    public init(argument: Int, _ comparison: Comparison, _ value: UInt64) {
        self.argument = argument
        self.comparison = comparison
        self.value = value
    }
}

/// One rule: `action` for `syscall` (by name), when every condition holds.
public struct SeccompRule: Sendable, Hashable {
    /// The system call's name as the kernel knows it on this architecture (`socket`, `clone3`).
    /// Calls newer than the installed libseccomp (up to `listns`, 470) are found
    /// by number in AsyncSpawn's own table on x86_64 and aarch64.
    public var syscall: String
    /// What the call gets when the conditions hold.
    public var action: SeccompAction
    /// All must hold (AND). Several rules for one call are alternatives (OR).
    public var conditions: [SeccompCondition]

    /// A rule for `syscall`.
    public init(_ syscall: String, _ action: SeccompAction, when conditions: [SeccompCondition] = []) {
        self.syscall = syscall
        self.action = action
        self.conditions = conditions
    }
}

/// A system-call filter built from Swift, compiled in the parent with libseccomp
/// and loaded in the child (raw `seccomp(2)`, last before `execve`).
///
/// Calls of a foreign architecture (on x86_64: i386 `int 0x80`, x32) never
/// bypass it: they kill the process.
///
/// ```swift
/// var filter = SeccompFilter.preset(.noNetwork)
/// filter.rules.append(SeccompRule("ptrace", .errno(EPERM)))
/// config.seccomp = filter
/// ```
public struct SeccompFilter: Sendable, Hashable {
    /// What calls that match no rule get.
    public var defaultAction: SeccompAction
    /// The rules.
    public var rules: [SeccompRule]

    /// A filter with a default action and rules.
    public init(defaultAction: SeccompAction = .allow, rules: [SeccompRule] = []) {
        self.defaultAction = defaultAction
        self.rules = rules
    }

    /// A preset filter (default allow, the preset's rules).
    public static func preset(_ preset: SeccompPreset, deniedWith action: SeccompAction = .errno(EPERM)) -> SeccompFilter {
        SeccompFilter(defaultAction: .allow, rules: preset.rules(action: action))
    }

    /// These calls get `action` (EPERM by default), whatever their arguments.
    public static func deny(_ syscalls: [String], with action: SeccompAction = .errno(EPERM)) -> SeccompFilter {
        SeccompFilter(defaultAction: .allow, rules: syscalls.map { SeccompRule($0, action) })
    }

    /// This filter's rules followed by `other`'s (the default action stays this
    /// one's). Where both have a rule for the same call and conditions, this
    /// one's action wins.
    public func merging(_ other: SeccompFilter) -> SeccompFilter {
        SeccompFilter(defaultAction: defaultAction, rules: rules + other.rules)
    }

    /// How many times a filter was compiled by libseccomp in this process (the
    /// cache makes repeated spawns with one filter compile it once).
    public static var compilationCount: Int { cache.withLock { $0.compilations } }

    /// How many times this filter value was compiled by libseccomp in this process.
    public static func compilationCount(of filter: SeccompFilter) -> Int {
        cache.withLock { $0.perFilter[filter] ?? 0 }
    }

    private struct Cache {
        var programs: [SeccompFilter: SeccompProgram] = [:]
        var compilations = 0
        var perFilter: [SeccompFilter: Int] = [:]
    }
    private static let cache = Locked(Cache())

    /// Whether `name` is a system call on this architecture: libseccomp knows it, or
    /// (on x86_64 and aarch64) it is one of the calls from `pidfd_send_signal` (424)
    /// to `listns` (470), which AsyncSpawn numbers itself when libseccomp is older.
    public static func isKnownSyscall(_ name: String) -> Bool {
        SyscallTable.number(of: name) != nil
    }

    /// Compiles to BPF (cached by value). Throws ``SpawnError/Code/seccomp`` naming
    /// an unknown system call or a rule libseccomp refuses.
    public func compile() throws(SpawnError) -> SeccompProgram {
        if let cached = SeccompFilter.cache.withLock({ $0.programs[self] }) { return cached }
        let program = try compileUncached()
        SeccompFilter.cache.withLock {
            $0.compilations += 1
            $0.perFilter[self, default: 0] += 1
            if $0.programs.count > 256 { $0.programs.removeAll() }
            $0.programs[self] = program
        }
        return program
    }

    private func compileUncached() throws(SpawnError) -> SeccompProgram {
        func failure(_ what: String, _ r: Int32) -> SpawnError {
            SpawnError(code: .seccomp, step: "seccomp", errno: -r,
                       message: "seccomp: \(what): \(SpawnError.describe(errno: -r)) (errno \(-r))")
        }
        var numbers: [Int32] = []
        numbers.reserveCapacity(rules.count)
        for rule in rules {
            guard let number = SyscallTable.number(of: rule.syscall) else {
                let shown = String(rule.syscall.debugDescription.dropFirst().dropLast())
                throw SpawnError(code: .seccomp, step: "seccomp",
                                 message: "seccomp: unknown system call '\(shown)'")
            }
            numbers.append(number)
            if rule.conditions.count > 6 {
                throw SpawnError(code: .seccomp, step: "seccomp", message: "seccomp: rule for '\(rule.syscall)' has more than 6 conditions")
            }
            for c in rule.conditions where c.argument < 0 || c.argument > 5 {
                throw SpawnError(code: .seccomp, step: "seccomp",
                                 message: "seccomp: rule for '\(rule.syscall)': argument index \(c.argument) is not in 0...5")
            }
            if case .errno(let e) = rule.action, e < 0 || e > 4095 {
                throw SpawnError(code: .seccomp, step: "seccomp", message: "seccomp: rule for '\(rule.syscall)': errno \(e) is not in 0...4095")
            }
        }
        guard let ctx = seccomp_init(defaultAction.raw) else {
            throw SpawnError(code: .seccomp, step: "seccomp", message: "seccomp: seccomp_init failed")
        }
        defer { seccomp_release(ctx) }
        var r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, cseccomp_act_kill_process())
        if r < 0 { throw failure("setting the bad-architecture action", r) }
        // Merged presets can repeat a rule (the same call and conditions, with the
        // same or another action): libseccomp refuses the second (EEXIST), so the
        // first one for a call and conditions wins, as for calls without conditions.
        var added = Set<SeccompRule>()
        for (rule, number) in zip(rules, numbers) where rule.action != defaultAction {
            guard added.insert(SeccompRule(rule.syscall, .allow, when: rule.conditions)).inserted else { continue }
            var args: [scmp_arg_cmp] = rule.conditions.map { c in
                var cmp = scmp_arg_cmp()
                cmp.arg = UInt32(c.argument)
                cmp.datum_a = c.value
                switch c.comparison {
                case .equal: cmp.op = SCMP_CMP_EQ
                case .notEqual: cmp.op = SCMP_CMP_NE
                case .less: cmp.op = SCMP_CMP_LT
                case .lessOrEqual: cmp.op = SCMP_CMP_LE
                case .greater: cmp.op = SCMP_CMP_GT
                case .greaterOrEqual: cmp.op = SCMP_CMP_GE
                case .maskedEqual(let mask):
                    cmp.op = SCMP_CMP_MASKED_EQ
                    cmp.datum_a = mask
                    cmp.datum_b = c.value
                }
                return cmp
            }
            r = args.withUnsafeMutableBufferPointer {
                seccomp_rule_add_exact_array(ctx, rule.action.raw, number, UInt32($0.count), $0.baseAddress)
            }
            if r < 0 { throw failure("rule for '\(rule.syscall)'", r) }
        }
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var length = 0
        r = cseccomp_export(ctx, &buffer, &length)
        if r < 0 { throw failure("exporting the BPF program", r) }
        defer { free(buffer) }
        return SeccompProgram(bytes: Array(UnsafeBufferPointer(start: buffer, count: length)))
    }
}

/// Ready-made filters for untrusted code. Each refuses exactly what its
/// documentation says, with EPERM (or the action given), and allows the rest.
///
/// Every preset also refuses io_uring (`io_uring_setup`, `io_uring_enter`,
/// `io_uring_register`): a ring's operations open, write, connect and more inside
/// the kernel, where no seccomp filter sees them.
///
/// System calls newer than the installed libseccomp are refused by number on
/// x86_64 and aarch64 (see ``SeccompRule/syscall``); on other architectures a
/// preset leaves out the calls libseccomp cannot name.
public enum SeccompPreset: String, Sendable, Hashable, CaseIterable {
    /// `socket()` for every address family but `AF_UNIX` fails (local IPC still
    /// works), and so does io_uring (it can create and connect sockets).
    case noNetwork
    /// `fork` and `vfork` fail; `clone` without `CLONE_THREAD`, or with
    /// `CLONE_PARENT`, fails (threads still work); `clone3` fails with ENOSYS, so
    /// libc falls back to `clone`, whose flags BPF can read. io_uring fails.
    case noNewProcesses
    /// No inspecting other processes: `ptrace`, `process_vm_readv`,
    /// `process_vm_writev`, `kcmp`, `pidfd_getfd` and io_uring fail.
    case noProcessInspection
    /// No system administration: mounts (`mount`, `umount2`, `pivot_root`, the new
    /// mount API with `open_tree_attr`), namespaces (`unshare`, `setns`, and
    /// `clone` with any of `CLONE_NEWNS`, `CLONE_NEWCGROUP`, `CLONE_NEWUTS`,
    /// `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID`, `CLONE_NEWNET`), `clone`
    /// with `CLONE_PARENT` (its child would become a child of the spawning process,
    /// a server, instead of the run's), kernel modules, `reboot`, `kexec_*`,
    /// `swapon`/`swapoff`, `bpf`, `perf_event_open`, `chroot` and io_uring fail. `clone3`, whose flags BPF cannot read (they are
    /// in memory), fails with ENOSYS whatever the action, so libc falls back to
    /// `clone`; plain `fork` and threads still work.
    case noAdministration
    /// A read-only view of the filesystem: `open`/`openat` with `O_WRONLY`, `O_RDWR`,
    /// `O_CREAT` or `O_TRUNC` fail, `openat2` fails with ENOSYS (libc falls back),
    /// and so do `creat`, `truncate`, renames, unlinks, `mkdir`, `rmdir`, links,
    /// `mknod`, changes of mode (`chmod`, `fchmodat`, `fchmodat2`, …), owner, times,
    /// extended attributes (`setxattr`, `setxattrat`, `removexattrat`, …) and inode
    /// flags (`file_setattr`, and `ioctl` `FS_IOC_SETFLAGS`/`FS_IOC_FSSETXATTR`),
    /// `open_by_handle_at`, and io_uring.
    /// Writing to descriptors already open (stdout, pipes) still works. Not
    /// covered: binding a Unix socket to a path creates a file (the address is in
    /// memory, which BPF cannot read); combine with `noNetwork` when that matters.
    case readOnlyFilesystem

    /// The kebab-case name the CLI uses (`no-network`).
    public var name: String {
        switch self {
        case .noNetwork: "no-network"
        case .noNewProcesses: "no-new-processes"
        case .noProcessInspection: "no-process-inspection"
        case .noAdministration: "no-administration"
        case .readOnlyFilesystem: "read-only-filesystem"
        }
    }

    /// A preset by its kebab-case name.
    public init?(name: String) {
        guard let p = SeccompPreset.allCases.first(where: { $0.name == name }) else { return nil }
        self = p
    }

    /// The namespace flags of clone(2): each one alone creates a namespace.
    static let cloneNamespaceFlags: [UInt64] = [
        0x0002_0000,  // CLONE_NEWNS
        0x0200_0000,  // CLONE_NEWCGROUP
        0x0400_0000,  // CLONE_NEWUTS
        0x0800_0000,  // CLONE_NEWIPC
        0x1000_0000,  // CLONE_NEWUSER
        0x2000_0000,  // CLONE_NEWPID
        0x4000_0000,  // CLONE_NEWNET
    ]

    /// CLONE_PARENT: the new process becomes a child of the caller's parent,
    /// here the process that spawned the child (a server), which never waits for
    /// processes it did not start.
    static let cloneParent: UInt64 = 0x0000_8000

    /// The argument of clone(2) that holds its flags: the first everywhere but on
    /// s390x (CONFIG_CLONE_BACKWARDS2 swaps the first two).
    static var cloneFlagsArgument: Int {
        #if arch(s390x)
        1
        #else
        0
        #endif
    }

    func rules(action: SeccompAction) -> [SeccompRule] {
        let ioUring = ["io_uring_setup", "io_uring_enter", "io_uring_register"].map { SeccompRule($0, action) }
        /// `(clone's flags & mask) == value`.
        func cloneFlags(_ mask: UInt64, _ value: UInt64) -> [SeccompCondition] {
            [SeccompCondition(argument: SeccompPreset.cloneFlagsArgument, .maskedEqual(mask: mask), value)]
        }
        var rules: [SeccompRule]
        switch self {
        case .noNetwork:
            rules = [SeccompRule("socket", action, when: [SeccompCondition(argument: 0, .notEqual, UInt64(AF_UNIX))])]
        case .noNewProcesses:
            let cloneThread: UInt64 = 0x0001_0000  // CLONE_THREAD
            rules = [
                SeccompRule("fork", action),
                SeccompRule("vfork", action),
                SeccompRule("clone", action, when: cloneFlags(cloneThread, 0)),
                SeccompRule("clone", action, when: cloneFlags(SeccompPreset.cloneParent, SeccompPreset.cloneParent)),
                SeccompRule("clone3", .errno(ENOSYS)),
            ]
        case .noProcessInspection:
            rules = ["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"]
                .map { SeccompRule($0, action) }
        case .noAdministration:
            rules = [
                "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr", "move_mount", "fsopen",
                "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "init_module", "finit_module",
                "delete_module", "reboot", "kexec_load", "kexec_file_load", "swapon", "swapoff", "bpf",
                "perf_event_open",
            ].map { SeccompRule($0, action) }
            // One rule per flag (rules for one call are alternatives): any of them refuses.
            for flag in SeccompPreset.cloneNamespaceFlags + [SeccompPreset.cloneParent] {
                rules.append(SeccompRule("clone", action, when: cloneFlags(flag, flag)))
            }
            // clone3 takes its flags in a struct in memory, which BPF cannot read:
            // ENOSYS makes libc retry with clone, whose flags the rules above see.
            rules.append(SeccompRule("clone3", .errno(ENOSYS)))
        case .readOnlyFilesystem:
            let writeFlags: [UInt64] = [UInt64(O_WRONLY), UInt64(O_RDWR), UInt64(O_CREAT), UInt64(O_TRUNC)]
            rules = []
            for flag in writeFlags {
                rules.append(SeccompRule("open", action, when: [SeccompCondition(argument: 1, .maskedEqual(mask: flag), flag)]))
                rules.append(SeccompRule("openat", action, when: [SeccompCondition(argument: 2, .maskedEqual(mask: flag), flag)]))
            }
            rules.append(SeccompRule("openat2", .errno(ENOSYS)))
            rules += [
                "creat", "truncate", "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat",
                "rmdir", "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat", "chmod", "fchmod",
                "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime", "utimes", "utimensat",
                "futimesat", "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr",
                "fremovexattr", "removexattrat", "file_setattr",
                // Opening by file handle takes its flags like openat; it needs
                // CAP_DAC_READ_SEARCH, so refusing it whole costs nothing else.
                "open_by_handle_at",
            ].map { SeccompRule($0, action) }
            // The inode flags and attributes (immutable, append-only, no-dump,
            // project id) through ioctl, on a descriptor opened read-only:
            // FS_IOC_SETFLAGS and FS_IOC_FSSETXATTR, what file_setattr does.
            for request: UInt64 in [0x4008_6602, 0x401c_5820] {
                rules.append(SeccompRule("ioctl", action, when: [SeccompCondition(argument: 1, .equal, request)]))
            }
        }
        rules += ioUring
        // On x86_64 and aarch64 every name resolves (libseccomp or SyscallTable), and
        // SeccompTests checks it; elsewhere a call libseccomp cannot name is left out
        // rather than making the preset unusable.
        return rules.filter { SyscallTable.number(of: $0.syscall) != nil }
    }
}
