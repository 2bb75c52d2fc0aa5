import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The user ids runs are given, one per run at a time, as isolate's boxes are:
/// with a uid of its own, a run cannot signal, trace, read the memory of
/// (`/proc/PID/mem`), or enter the files of another run, and `RLIMIT_NPROC`
/// counts its own processes only. Each run's group id is the same number.
final class UserPool: Sendable {
    let range: ClosedRange<UInt32>
    private let state: Mutex<(inUse: Set<UInt32>, next: UInt32)>

    init(_ range: ClosedRange<UInt32>) {
        self.range = range
        state = Mutex(([], range.lowerBound))
    }

    /// A uid no run holds and no live process has (a process a run left behind,
    /// which the teardown should make impossible, keeps its uid out of use).
    /// nil when every one is taken.
    func acquire() -> UInt32? {
        state.withLock { s -> UInt32? in
            let count = Int(range.upperBound - range.lowerBound) + 1
            for _ in 0..<count {
                let candidate = s.next
                s.next = candidate == range.upperBound ? range.lowerBound : candidate + 1
                if s.inUse.contains(candidate) || UserPool.hasProcesses(uid: candidate) { continue }
                s.inUse.insert(candidate)
                return candidate
            }
            return nil
        }
    }

    func release(_ uid: UInt32) {
        _ = state.withLock { $0.inUse.remove(uid) }
    }

    /// Whether any process has `uid` as its real, effective, saved or file-system uid.
    static func hasProcesses(uid: UInt32) -> Bool {
        guard let proc = opendir("/proc") else { return false }
        defer { closedir(proc) }
        let wanted = String(uid)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while let entry = readdir(proc) {
            let first = entry.pointee.d_name.0
            guard first >= 0x31 && first <= 0x39 else { continue }  // a pid
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            let fd = open("/proc/\(name)/status", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard n > 0 else { continue }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { continue }
            if line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().contains(where: { $0 == wanted }) {
                return true
            }
        }
        return false
    }
}
