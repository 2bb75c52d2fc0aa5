import CSpawn

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The child's stdout or stderr: an `AsyncSequence` of byte chunks, read as the
/// consumer asks for them.
///
/// Single pass: iterate it once. Backpressure is built in: nothing is read
/// from the pipe until the consumer asks for the next chunk, so a slow consumer
/// lets the pipe fill and the child blocks on its write; memory does not grow.
/// The sequence ends at end-of-file, when the output limit is passed (the child's
/// group is then torn down), or after the drain deadline (the child and its
/// group are gone, a process that escaped the group holds the pipe): at the
/// first read that would wait, once what was in the pipe, up to 1 MiB, has been
/// delivered. Chunks are at most 64 KiB, or 1 MiB once a busy pipe has been
/// enlarged (see the README's notes on streams). The pipe is owned by the ``ChildProcess`` and closed when the
/// stream ends or the scope of ``withChildProcess(_:isolation:_:)`` does.
public struct ChildOutput: AsyncSequence, Sendable {
    /// A chunk of bytes, as one `read(2)` returned it.
    public typealias Element = [UInt8]
    /// ``SpawnError`` or `CancellationError`.
    public typealias Failure = any Error

    let pipe: PipeEnd?
    let core: ProcessCore
    let limit: Int?
    let maximumLineLength: Int

    /// How many bytes the stream has delivered so far.
    public var byteCount: Int { pipe?.byteCount ?? 0 }
    /// True when the output limit cut the stream.
    public var truncated: Bool { pipe?.truncated ?? false }

    /// The iterator; a second one of the same stream ends at once (single pass).
    public func makeAsyncIterator() -> Iterator {
        let claimed = pipe?.claim() ?? false
        return Iterator(pipe: claimed ? pipe : nil, core: core, limit: limit)
    }

    /// Stops reading: closes this process's end of the pipe, so the child's next
    /// write to it fails with `EPIPE` (or `SIGPIPE` kills it), as when a reader
    /// of a shell pipeline goes away. Use it to abandon a stream mid-way.
    public func close() {
        pipe?.close()
    }

    /// Reads the stream to its end into one array (up to the output limit).
    public func collect() async throws -> [UInt8] {
        var result: [UInt8] = []
        var iterator = makeAsyncIterator()
        try await iterator.readAll(into: &result)
        return result
    }

    /// The stream as lines of text (UTF-8, invalid sequences replaced), without
    /// their `\n`. A last line without `\n` is delivered too. A line longer than
    /// the configuration's `maximumLineLength` throws ``SpawnError/Code/lineTooLong``.
    public var lines: ChildOutputLines { ChildOutputLines(base: self, maximumLength: maximumLineLength) }

    /// Reads chunks as the consumer asks for them.
    public struct Iterator: AsyncIteratorProtocol {
        /// A chunk of bytes.
        public typealias Element = [UInt8]
        let pipe: PipeEnd?
        let core: ProcessCore
        let limit: Int?
        var finished = false
        var afterDrain = 0
        /// Reads that filled the buffer, in a row: the pipe is busy.
        var fullReads = 0
        /// The read buffer. A chunk of at least half of it is handed to the
        /// consumer as is (and a new buffer is made, not zero-filled); a smaller
        /// one is copied out. So big chunks cost no copy and small ones no waste.
        private var scratch: [UInt8] = []
        private var capacity: Int

        init(pipe: PipeEnd?, core: ProcessCore, limit: Int?) {
            self.pipe = pipe
            self.core = core
            self.limit = limit
            // No pipe (stdout/stderr not .pipe, or a second iteration): no buffer.
            self.capacity = pipe == nil ? 0 : Self.initialCapacity
            self.finished = pipe == nil
        }

        /// The first read buffer: the default pipe's capacity.
        static let initialCapacity = 64 * 1024

        /// The next chunk, or nil at the end. Suspends (without blocking a thread)
        /// until the child writes.
        public mutating func next() async throws -> [UInt8]? {
            guard let n = try await readChunk() else { return nil }
            if n * 2 >= capacity {
                var chunk = scratch
                scratch = []
                chunk.removeLast(chunk.count - n)
                return chunk
            }
            return Array(scratch[0..<n])
        }

        mutating func readAll(into result: inout [UInt8]) async throws {
            while let n = try await readChunk() {
                result.append(contentsOf: scratch[0..<n])
            }
        }

        /// Reads one chunk into `scratch` and returns how many of its bytes to
        /// deliver; nil at the end.
        ///
        /// After the drain deadline (the child and its group are gone, someone
        /// else still holds the pipe) what is already in the pipe is still
        /// delivered, however late the consumer comes: the stream ends at the
        /// first read that would wait, or after one more pipe's worth at most
        /// (so a process that escaped the group cannot keep it going forever).
        ///
        /// A pipe whose reads keep filling the buffer is enlarged to 1 MiB, and
        /// the buffer with it ( ``PipeEnd/grow()``): a busy producer then wakes
        /// the reader once per MiB instead of once per 64 KiB.
        private mutating func readChunk() async throws -> Int? {
            guard !finished, let pipe else { return nil }
            while true {
                if scratch.count != capacity {
                    // Not zero-filled (a 1 MiB memset per chunk would cost ~5 % of
                    // a fast stream): only the bytes read(2) wrote are ever used.
                    scratch = [UInt8](unsafeUninitializedCapacity: capacity) { _, count in count = capacity }
                }
                guard let n = scratch.withUnsafeMutableBytes({ pipe.read(into: $0) }) else {
                    finish()
                    return nil
                }
                if n > 0 {
                    if n == capacity {
                        fullReads += 1
                        if fullReads == 2 && capacity < PipeEnd.grownSize && pipe.grow() {
                            capacity = PipeEnd.grownSize
                        }
                    } else {
                        fullReads = 0
                    }
                    let (keep, past) = pipe.account(Int(n), limit: limit)
                    if past {
                        core.beginTeardown(.outputLimit)
                        finish()
                        return keep > 0 ? keep : nil
                    }
                    if core.isDrained {
                        afterDrain += Int(n)
                        if afterDrain > Self.drainAllowance { finish() }
                    }
                    return Int(n)
                }
                if n == 0 {
                    finish()
                    return nil
                }
                if n == -Int(EAGAIN) {
                    if core.isDrained {
                        finish()
                        return nil
                    }
                    if !(await pipe.waitReady(writable: false)) {
                        try Task.checkCancellation()
                    }
                    continue
                }
                finish()
                throw SpawnError.system("read", Int32(-n), code: .io)
            }
        }

        /// What is read after the drain deadline at most: the largest pipe.
        static let drainAllowance = 1 << 20

        private mutating func finish() {
            finished = true
            pipe?.close()
        }
    }
}

/// Lines of a ``ChildOutput``: see ``ChildOutput/lines``.
public struct ChildOutputLines: AsyncSequence, Sendable {
    /// A line without its `\n`.
    public typealias Element = String
    /// ``SpawnError`` or `CancellationError`.
    public typealias Failure = any Error

    let base: ChildOutput
    let maximumLength: Int

    /// The iterator (single pass, like the underlying stream).
    public func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), maximumLength: maximumLength)
    }

    /// Splits chunks into lines.
    public struct Iterator: AsyncIteratorProtocol {
        /// A line.
        public typealias Element = String
        var base: ChildOutput.Iterator
        let maximumLength: Int
        var pending: [UInt8] = []
        var chunk: [UInt8] = []
        var offset = 0
        var ended = false

        init(base: ChildOutput.Iterator, maximumLength: Int) {
            self.base = base
            self.maximumLength = maximumLength
        }

        /// The next line, or nil at the end.
        public mutating func next() async throws -> String? {
            while true {
                if offset < chunk.count {
                    if let newline = chunk[offset...].firstIndex(of: UInt8(ascii: "\n")) {
                        let length = pending.count + (newline - offset)
                        if length > maximumLength { throw tooLong() }
                        let line: String
                        if pending.isEmpty {
                            line = String(decoding: chunk[offset..<newline], as: UTF8.self)
                        } else {
                            pending.append(contentsOf: chunk[offset..<newline])
                            line = String(decoding: pending, as: UTF8.self)
                            pending.removeAll(keepingCapacity: true)
                        }
                        offset = newline + 1
                        return line
                    }
                    pending.append(contentsOf: chunk[offset...])
                    offset = chunk.count
                    if pending.count > maximumLength { throw tooLong() }
                }
                if ended { return nil }
                guard let next = try await base.next() else {
                    ended = true
                    chunk = []
                    offset = 0
                    if pending.isEmpty { return nil }
                    let line = String(decoding: pending, as: UTF8.self)
                    pending = []
                    return line
                }
                chunk = next
                offset = 0
            }
        }

        private func tooLong() -> SpawnError {
            SpawnError(code: .lineTooLong,
                       message: "a line of the child's output is longer than \(maximumLength) bytes")
        }
    }
}

/// The child's stdin: write bytes or text, then ``finish()``.
///
/// Writes suspend (without blocking a thread) while the pipe is full, so the
/// writer can run concurrently with reading the child's output. Use one writer
/// task at a time. A write after the child closed its stdin throws
/// ``SpawnError/Code/brokenPipe``.
public struct StandardInputWriter: Sendable {
    let pipe: PipeEnd?
    let core: ProcessCore

    /// Writes all of `bytes`.
    public func write(_ bytes: some Sequence<UInt8>) async throws {
        let array = Array(bytes)
        guard let pipe else {
            throw SpawnError(code: .invalidConfiguration, message: "stdin is not a pipe (set standardInput = .pipe)")
        }
        var offset = 0
        while offset < array.count {
            if core.isDrained {
                // The child and its group are gone; whoever still holds the pipe
                // (a process that escaped the group) is not ours to wait for.
                throw SpawnError(code: .brokenPipe, errno: EPIPE, message: "stdin: the child is gone")
            }
            let written = array.withUnsafeBytes { raw in
                pipe.write(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            guard let n = written else {
                throw SpawnError(code: .brokenPipe, message: "stdin: already finished")
            }
            if n > 0 {
                offset += Int(n)
            } else if n == -Int(EAGAIN) {
                if !(await pipe.waitReady(writable: true)) {
                    try Task.checkCancellation()
                }
            } else if n == -Int(EPIPE) {
                throw SpawnError(code: .brokenPipe, errno: EPIPE, message: "stdin: the child closed its end (errno \(EPIPE))")
            } else {
                throw SpawnError.system("write", Int32(-n), code: .io)
            }
        }
    }

    /// Writes `text` as UTF-8.
    public func write(_ text: String) async throws {
        try await write(Array(text.utf8))
    }

    /// Closes the pipe: the child reads end-of-file.
    public func finish() {
        pipe?.close()
    }
}
