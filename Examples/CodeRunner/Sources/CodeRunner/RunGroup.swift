#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The processes of one run: its process group, whose id is the pid of the
/// run's first process (a new session). Nothing of a run can leave it: the
/// filter refuses `setsid` and `setpgid`.
enum RunGroup {
    /// Waits until no process of group `id` is alive, polling (1 ms, doubling up
    /// to 50 ms), for at most `bound`; true if the group emptied.
    ///
    /// By the time AsyncSpawn returns, the group has been sent SIGKILL: no member
    /// runs its own code again, but one may still be finishing a system call (a
    /// rename into the run's directory, say). Removal waits for them all. A zombie
    /// counts as gone (it runs nothing; whoever it was reparented to reaps it).
    /// Not cancelled with the calling task: a run's directory is removed only
    /// after this.
    static func waitUntilEmpty(_ id: Int32, within bound: Duration) async -> Bool {
        await Task {
            let deadline = ContinuousClock.now + bound
            var pause = Duration.milliseconds(1)
            while hasLiveMember(id) {
                if ContinuousClock.now >= deadline { return false }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(50))
            }
            return true
        }.value
    }

    /// True while some process of group `id` exists and is not a zombie.
    static func hasLiveMember(_ id: Int32) -> Bool {
        if kill(-id, 0) != 0 && errno == ESRCH { return false }
        // kill() finds zombies too: look at the members' states.
        guard let proc = opendir("/proc") else { return true }
        defer { closedir(proc) }
        while let entry = readdir(proc) {
            let name = TreeRemoval.entryName(entry)
            guard name.count > 1, name.dropLast().allSatisfy({ $0 >= 48 && $0 <= 57 }) else { continue }
            let pid = String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let (state, group) = stateAndGroup(of: pid) else { continue }
            if group == id && state != "Z" && state != "X" { return true }
        }
        return false
    }

    /// The state letter and process group of a process, from `/proc/PID/stat`
    /// ("pid (comm) S ppid pgrp ..."; the command may hold spaces and parentheses).
    private static func stateAndGroup(of pid: String) -> (Character, Int32)? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        guard let end = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 3, let state = fields[0].first, let group = Int32(fields[2]) else { return nil }
        return (state, group)
    }
}
