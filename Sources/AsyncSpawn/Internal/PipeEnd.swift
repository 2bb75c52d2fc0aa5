import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The parent's end of one pipe (non-blocking, close-on-exec). Closes once.
final class PipeEnd: Sendable {
    private struct State {
        var fd: Int32
        var bytes = 0
        var truncated = false
        var iterated = false
    }
    private let state: Locked<State>

    init(fd: Int32) { state = Locked(State(fd: fd)) }

    var fd: Int32 { state.withLock { $0.fd } }
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

    func close() {
        let fd = state.withLock { s -> Int32 in
            let fd = s.fd
            s.fd = -1
            return fd
        }
        if fd >= 0 {
            Reactor.shared.forget(fd: fd)
            Glibc.close(fd)
        }
    }

    deinit {
        let fd = state.withLock { $0.fd }
        if fd >= 0 { Glibc.close(fd) }
    }
}
