#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Empties a directory the way `rm -rf` would, walking by descriptor.
///
/// What makes it safe when the tree holds symlinks, or is changed while it is
/// removed (by another run of the same uid; a run's own processes are gone first):
/// - a directory is entered only with `openat(parent, name, O_NOFOLLOW |
///   O_DIRECTORY)`, `parent` being the descriptor of the directory the name was
///   read from: a symlink is never followed, no path is ever built, ".." is
///   never used. A name that is a symlink (or a file) when it is opened is
///   unlinked, which removes the link itself;
/// - everything is removed with `unlinkat` relative to the directory the name
///   was read from, so only entries of directories reached from the top go;
/// - at most ``maximumDepth`` + 1 descriptors are open, however deep the tree:
///   a directory found deeper than that is moved (`renameat`, both sides
///   relative to descriptors of the tree) up into the top directory under a
///   fresh name, and is removed from there later in the walk;
/// - a directory on another filesystem (a mount point) is not entered;
/// - as root, no mode is ever changed (CAP_DAC_OVERRIDE makes it unnecessary).
///   Otherwise the run had the server's uid and may have taken its own
///   permissions away: only a directory's mode is restored, through `fchmod` on
///   its descriptor (opened with O_NOFOLLOW | O_DIRECTORY) or `fchmodat(parent,
///   name, AT_SYMLINK_NOFOLLOW)`, never a file's (a file may be a hard link to
///   one outside the tree).
enum TreeRemoval {
    /// Directory levels below the top held open at once.
    static let maximumDepth = 64

    /// What could not be removed: the first few problems and how many there were.
    struct Problems: Sendable, CustomStringConvertible {
        private(set) var first: [String] = []
        private(set) var count = 0

        var isEmpty: Bool { count == 0 }

        mutating func append(_ problem: String) {
            count += 1
            if first.count < 8 { first.append(problem) }
        }

        mutating func append(contentsOf other: Problems) {
            for problem in other.first { append(problem) }
            count += other.count - other.first.count
        }

        var description: String {
            first.joined(separator: "; ") + (count > first.count ? " (and \(count - first.count) more)" : "")
        }
    }

    /// Removes everything inside the directory open at `top`; the descriptor stays
    /// the caller's, and the directory itself stays. `changeModes`: restore the
    /// owner's access to directories that lack it (unneeded, and never done, as root).
    static func empty(_ top: Int32, changeModes: Bool = geteuid() != 0) -> Problems {
        var problems = Problems()
        var info = stat()
        guard fstat(top, &info) == 0 else {
            problems.append("fstat: \(errorText())")
            return problems
        }
        let device = info.st_dev
        if changeModes { restoreOwnerAccess(top, info) }
        // A descriptor of its own for the stream: closedir closes it, not `top`.
        // It shares `top`'s offset, which an earlier walk left at the end: rewind.
        let copy = fcntl(top, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0, let stream = fdopendir(copy) else {
            problems.append("opening the directory: \(errorText())")
            if copy >= 0 { close(copy) }
            return problems
        }
        rewinddir(stream)
        var walk = Walk(stack: [Frame(stream: stream, name: [])], device: device, changeModes: changeModes)
        walk.run(&problems)
        return problems
    }

    /// One open directory of the walk.
    private struct Frame {
        /// The `DIR *`; it owns the descriptor.
        let stream: OpaquePointer
        /// Its name in the directory of the frame below (unused for the top).
        let name: [CChar]
        /// Something in it was removed or moved (or changed under the walk)
        /// during this pass: read it again before deciding it is done.
        var changed = false

        var descriptor: Int32 { dirfd(stream) }
    }

    private struct Walk {
        var stack: [Frame]
        let device: dev_t
        let changeModes: Bool

        /// Depth-first, one pass over a directory after another until a pass
        /// changes nothing (entries removed while a directory is read may or may
        /// not be returned; a directory moved up to the top shows up in a later
        /// pass), then the directory is removed from its parent.
        mutating func run(_ problems: inout Problems) {
            while let level = stack.indices.last {
                errno = 0
                guard let entry = readdir(stack[level].stream) else {
                    if errno != 0 {
                        problems.append("reading \(describe(stack[level].name)): \(errorText())")
                    } else if stack[level].changed {
                        stack[level].changed = false
                        rewinddir(stack[level].stream)
                        continue
                    }
                    let done = stack.removeLast()
                    closedir(done.stream)
                    if let parent = stack.indices.last {
                        if unlinkat(stack[parent].descriptor, done.name, AT_REMOVEDIR) == 0 {
                            stack[parent].changed = true
                        } else if errno == ENOTDIR {
                            // Replaced by a non-directory while it was emptied: look again.
                            stack[parent].changed = true
                        } else if errno != ENOENT {
                            // ENOTEMPTY: it holds what could not be removed (reported
                            // above), or was written to meanwhile (by another run).
                            problems.append("removing \(describe(done.name)): \(errorText())")
                        }
                    }
                    continue
                }
                let name = entryName(entry)
                if name == [46, 0] || name == [46, 46, 0] { continue }  // "." and ".."
                let parent = stack[level].descriptor
                if entry.pointee.d_type != UInt8(DT_DIR) {
                    if unlinkat(parent, name, 0) == 0 {
                        stack[level].changed = true
                        continue
                    }
                    if errno == ENOENT { continue }
                    // EISDIR: a directory (the type was unknown, or it was replaced).
                    guard errno == EISDIR else {
                        problems.append("removing \(describe(name)): \(errorText())")
                        continue
                    }
                }
                if stack.count > TreeRemoval.maximumDepth {
                    if moveToTop(parent, name, &problems) {
                        stack[level].changed = true
                        stack[0].changed = true
                    }
                    continue
                }
                switch open(parent, name) {
                case .directory(let stream):
                    stack.append(Frame(stream: stream, name: name))
                case .notDirectory:
                    // A symlink or a file by now: remove that entry itself.
                    if unlinkat(parent, name, 0) == 0 || errno == ENOENT {
                        stack[level].changed = true
                    } else {
                        problems.append("removing \(describe(name)): \(errorText())")
                    }
                case .missing:
                    continue
                case .otherFilesystem:
                    problems.append("\(describe(name)) is on another filesystem: left in place")
                case .failed(let problem):
                    problems.append(problem)
                }
            }
        }

        enum Opened {
            case directory(OpaquePointer)
            case notDirectory
            case missing
            case otherFilesystem
            case failed(String)
        }

        /// Opens `name`, an entry of `parent`, as a directory, never through a symlink.
        func open(_ parent: Int32, _ name: [CChar]) -> Opened {
            let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            var fd = openat(parent, name, flags)
            if fd < 0 && errno == EACCES && changeModes {
                // The run took the owner's read or search right away: give it back.
                if fchmodat(parent, name, 0o700, AT_SYMLINK_NOFOLLOW) == 0 { fd = openat(parent, name, flags) }
            }
            guard fd >= 0 else {
                switch errno {
                case ENOTDIR, ELOOP: return .notDirectory
                case ENOENT: return .missing
                default: return .failed("opening \(describe(name)): \(errorText())")
                }
            }
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                let problem = "fstat \(describe(name)): \(errorText())"
                close(fd)
                return .failed(problem)
            }
            if info.st_dev != device {
                close(fd)
                return .otherFilesystem
            }
            if changeModes { TreeRemoval.restoreOwnerAccess(fd, info) }
            guard let stream = fdopendir(fd) else {
                let problem = "reading \(describe(name)): \(errorText())"
                close(fd)
                return .failed(problem)
            }
            return .directory(stream)
        }

        /// Moves the directory `name` of `parent` up into the top directory under a
        /// name nobody can guess (so it replaces nothing the run made), where a
        /// later pass over the top removes it.
        func moveToTop(_ parent: Int32, _ name: [CChar], _ problems: inout Problems) -> Bool {
            let top = stack[0].descriptor
            var restored = false
            for _ in 0..<8 {
                let fresh = ".removal-" + randomName(length: 16)
                if renameat(parent, name, top, fresh) == 0 { return true }
                if errno == ENOENT { return false }
                if errno == EACCES && changeModes && !restored {
                    // Moving a directory rewrites its "..": it needs the owner's write right.
                    restored = true
                    if fchmodat(parent, name, 0o700, AT_SYMLINK_NOFOLLOW) == 0 { continue }
                }
                // Taken after all (EEXIST, ENOTEMPTY, ENOTDIR): another name.
                if errno != EEXIST && errno != ENOTEMPTY && errno != ENOTDIR && errno != EISDIR { break }
            }
            problems.append("moving \(describe(name)) up: \(errorText())")
            return false
        }
    }

    /// Gives the owner read, write and search on the directory open at `fd` (a
    /// descriptor opened with O_NOFOLLOW | O_DIRECTORY: the directory itself).
    static func restoreOwnerAccess(_ fd: Int32, _ info: stat) {
        if info.st_mode & 0o700 != 0o700 { fchmod(fd, (info.st_mode & 0o7777) | 0o700) }
    }

    /// The entry's name, NUL-terminated, as bytes: a name need not be UTF-8.
    static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> [CChar] {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
            let bytes = raw.bindMemory(to: CChar.self)
            let length = strnlen(bytes.baseAddress!, bytes.count)
            return Array(bytes[0..<length]) + [0]
        }
    }

    /// A name for messages (invalid UTF-8 replaced).
    static func describe(_ name: [CChar]) -> String {
        name.isEmpty
            ? "the directory" : "'\(String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))'"
    }
}
