import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The parent's end of one pipe (non-blocking, close-on-exec).
///
/// Every use of the descriptor holds a use count (``read(into:)``,
/// ``write(_:)``, ``waitReady(writable:)``); ``close()`` marks the end closed at
/// once, wakes a waiter, and the descriptor itself is closed by the last user.
/// So a `close()` from another task can never make a reader or writer touch a
/// closed number, or a number the kernel has meanwhile given to another file.
final class PipeEnd: Sendable {
    private struct State {
        var fd: Int32
        var closed = false
        var users = 0
        var bytes = 0
        var truncated = false
        var iterated = false
        var grown = false
    }

    /// Pipes of this process enlarged by ``grow()`` and still open: bounded, so
    /// that AsyncSpawn takes at most 16 MiB of the user's pipe budget
    /// (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB by default; past it the
    /// kernel gives an unprivileged user's new pipes one page).
    private static let grownPipes = Locked(0)
    static let grownPipeLimit = 16
    /// The size a busy pipe is enlarged to (the default `pipe-max-size`).
    static let grownSize = 1 << 20
    private let state: Locked<State>

    init(fd: Int32) { state = Locked(State(fd: fd)) }

    var isClosed: Bool { state.withLock { $0.closed } }
    var byteCount: Int { state.withLock { $0.bytes } }
    var truncated: Bool { state.withLock { $0.truncated } }

    /// Marks the stream as iterated; returns false if it already was (single pass).
    func claim() -> Bool {
        state.withLock { s in
            if s.iterated { return false }
            s.iterated = true
            return true
        }
    }

    /// Counts `n` more bytes against `limit`; returns how many of them to keep.
    func account(_ n: Int, limit: Int?) -> (keep: Int, past: Bool) {
        state.withLock { s in
            guard let limit else {
                s.bytes += n
                return (n, false)
            }
            let room = max(limit - s.bytes, 0)
            if n > room {
                s.bytes += room
                s.truncated = true
                return (room, true)
            }
            s.bytes += n
            return (n, false)
        }
    }

    private func acquire() -> Int32? {
        state.withLock { s in
            if s.closed { return nil }
            s.users += 1
            return s.fd
        }
    }

    private func release() {
        let fd = state.withLock { s -> Int32 in
            s.users -= 1
            if s.closed && s.users == 0 && s.fd >= 0 {
                let fd = s.fd
                s.fd = -1
                return fd
            }
            return -1
        }
        if fd >= 0 { destroy(fd) }
    }

    private func destroy(_ fd: Int32) {
        Reactor.shared.forget(fd: fd)
        Glibc.close(fd)
        let wasGrown = state.withLock { s -> Bool in
            defer { s.grown = false }
            return s.grown
        }
        if wasGrown { Self.grownPipes.withLock { $0 -= 1 } }
    }

    /// Enlarges the pipe to ``grownSize`` (F_SETPIPE_SZ), once, within the
    /// process-wide budget. For a stream whose reads keep filling the buffer:
    /// fewer wake-ups per byte. Returns whether the pipe is now that large.
    func grow() -> Bool {
        guard let fd = acquire() else { return false }
        defer { release() }
        if state.withLock({ $0.grown }) { return true }
        let admitted = Self.grownPipes.withLock { n -> Bool in
            if n >= Self.grownPipeLimit { return false }
            n += 1
            return true
        }
        guard admitted else { return false }
        if cspawn_set_pipe_size(fd, Int32(Self.grownSize)) >= Self.grownSize {
            state.withLock { $0.grown = true }
            return true
        }
        Self.grownPipes.withLock { $0 -= 1 }
        return false
    }

    /// `read(2)`: bytes read, 0 at end of file, -errno on error, nil once closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let fd = acquire() else { return nil }
        defer { release() }
        return cspawn_read(fd, buffer.baseAddress, buffer.count)
    }

    /// `write(2)`: bytes written, -errno on error, nil once closed.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let fd = acquire() else { return nil }
        defer { release() }
        return cspawn_write(fd, bytes.baseAddress, bytes.count)
    }

    /// Waits until readable (or writable). False when closed, aborted or cancelled.
    func waitReady(writable: Bool) async -> Bool {
        guard let fd = acquire() else { return false }
        let ready = await Reactor.shared.waitReady(fd: fd, writable: writable)
        release()
        return ready
    }

    /// Wakes a task waiting on this end (it then re-checks why).
    func abortWait() {
        let fd = state.withLock { $0.closed ? -1 : $0.fd }
        if fd >= 0 { Reactor.shared.abortWait(fd: fd) }
    }

    func close() {
        let (fd, now) = state.withLock { s -> (Int32, Bool) in
            if s.closed { return (-1, false) }
            s.closed = true
            if s.users == 0 {
                let fd = s.fd
                s.fd = -1
                return (fd, true)
            }
            return (s.fd, false)
        }
        guard fd >= 0 else { return }
        if now {
            destroy(fd)
        } else {
            Reactor.shared.abortWait(fd: fd)  // the waiter releases, and the last user closes
        }
    }

    deinit {
        let (fd, grown) = state.withLock { ($0.fd, $0.grown) }
        if fd >= 0 { Glibc.close(fd) }
        if grown { Self.grownPipes.withLock { $0 -= 1 } }
    }
}
