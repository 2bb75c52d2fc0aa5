import CSeccomp

/// System-call numbers: libseccomp's first, then AsyncSpawn's own table of the
/// calls an installed libseccomp may be too old to know.
///
/// Since `pidfd_send_signal` (424), Linux gives a new system call the same number
/// on every architecture but alpha (include/uapi/asm-generic/unistd.h and
/// arch/x86/entry/syscalls/syscall_64.tbl agree), so one list serves x86_64 and
/// aarch64. libseccomp 2.5.4 (Debian 12) stops at `futex_requeue` (456): without
/// this table, a filter could not name `setxattrat` (463), and a preset could not
/// refuse it. libseccomp accepts a rule for a number it has no name for.
///
/// Every number is checked against the kernel headers of the build machine by
/// `SeccompTests.tableMatchesKernelHeaders` (where the headers define the call),
/// and against libseccomp's own tables for both architectures where libseccomp
/// knows the call.
enum SyscallTable {
    /// Calls 424 and up, in order; the same numbers on x86_64 and aarch64.
    static let common: [(name: String, number: Int32)] = [
        ("pidfd_send_signal", 424), ("io_uring_setup", 425), ("io_uring_enter", 426),
        ("io_uring_register", 427), ("open_tree", 428), ("move_mount", 429), ("fsopen", 430),
        ("fsconfig", 431), ("fsmount", 432), ("fspick", 433), ("pidfd_open", 434), ("clone3", 435),
        ("close_range", 436), ("openat2", 437), ("pidfd_getfd", 438), ("faccessat2", 439),
        ("process_madvise", 440), ("epoll_pwait2", 441), ("mount_setattr", 442), ("quotactl_fd", 443),
        ("landlock_create_ruleset", 444), ("landlock_add_rule", 445), ("landlock_restrict_self", 446),
        ("memfd_secret", 447), ("process_mrelease", 448), ("futex_waitv", 449),
        ("set_mempolicy_home_node", 450), ("cachestat", 451), ("fchmodat2", 452),
        ("map_shadow_stack", 453), ("futex_wake", 454), ("futex_wait", 455), ("futex_requeue", 456),
        ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459), ("lsm_set_self_attr", 460),
        ("lsm_list_modules", 461), ("mseal", 462), ("setxattrat", 463), ("getxattrat", 464),
        ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467), ("file_getattr", 468),
        ("file_setattr", 469), ("listns", 470),
    ]

    /// Whether ``common`` applies to the architecture this library was built for
    /// (the one its filters are compiled for).
    static var appliesHere: Bool {
        #if arch(x86_64) || arch(arm64)
        true
        #else
        false
        #endif
    }

    private static let byName: [String: Int32] = {
        var map: [String: Int32] = [:]
        for entry in common { map[entry.name] = entry.number }
        return map
    }()

    /// The number of `name` on this architecture: libseccomp's if it knows the
    /// name, else ours (x86_64 and aarch64 only), else nil. Names libseccomp
    /// resolves to a negative pseudo-number (e.g. `socketcall` on x86_64) do not
    /// exist here.
    static func number(of name: String) -> Int32? {
        guard !name.isEmpty, !name.utf8.contains(0) else { return nil }
        let known = seccomp_syscall_resolve_name(name)
        if known >= 0 { return known }
        guard appliesHere else { return nil }
        return byName[name]
    }
}
