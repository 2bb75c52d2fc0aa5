// A uid no other process on the machine uses, for tests of RLIMIT_NPROC.
//
// RLIMIT_NPROC counts every process of the real uid, machine-wide, and root is
// exempt from it. A test that drops to a shared uid (65534 here runs other
// processes) would count processes it does not own; so each such test asks for
// a uid of its own.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

public enum UnusedUser {
    /// A fresh uid, used by no live process, with no passwd or group entry. Each
    /// call gives another one (so tests running at once never share one), taken
    /// from a range far above the distribution's and from a random start per test
    /// process (so two test processes do not pick the same ones).
    ///
    /// Its gid is the same number. Fails (with the reason) rather than returning
    /// an id it could not check: the caller's precondition would be unknown.
    public static func next() throws -> UInt32 {
        try state.withLock { next in
            for _ in 0..<1000 {
                let candidate = next
                next += 1
                if isUnused(candidate) { return candidate }
            }
            throw PreconditionUnmet("no unused uid in \(next - 1000)..<\(next)")
        }
    }

    /// True when no passwd or group entry names `id` and no live process has it
    /// as its real, effective, saved or file-system uid.
    public static func isUnused(_ id: UInt32) -> Bool {
        if passwdEntry(id) != nil || groupExists(id) { return false }
        return processes(withUID: id).isEmpty
    }

    /// The primary group of `uid` in the passwd database, nil when it has no
    /// entry (getpwuid_r: tests run in parallel, getpwuid's buffer is shared).
    public static func passwdEntry(_ uid: UInt32) -> (name: String, primaryGroup: UInt32)? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = buffer.withUnsafeMutableBufferPointer { getpwuid_r(uid, &entry, $0.baseAddress!, $0.count, &found) }
        guard rc == 0, found != nil else { return nil }
        return (String(cString: entry.pw_name), entry.pw_gid)
    }

    private static func groupExists(_ gid: UInt32) -> Bool {
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        let rc = buffer.withUnsafeMutableBufferPointer { getgrgid_r(gid, &entry, $0.baseAddress!, $0.count, &found) }
        return rc == 0 && found != nil
    }

    /// The pids whose real, effective, saved or file-system uid is `id`.
    public static func processes(withUID id: UInt32) -> [pid_t] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var found: [pid_t] = []
        let wanted = String(id)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = pid_t(name), let status = ProcFS.readFile("/proc/\(name)/status") else { continue }
            let text = String(decoding: status, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { continue }
            if line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().contains(where: { $0 == wanted }) {
                found.append(pid)
            }
        }
        return found
    }

    private static let state = TestLock<UInt32>(UInt32.random(in: 0..<100_000) * 10 + 3_000_000)
}

/// A test's precondition that does not hold on this machine; its description
/// says which.
public struct PreconditionUnmet: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A mutex around a value, for test bookkeeping (pthread-based, so the thread
/// sanitizer sees the ordering).
public final class TestLock<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
