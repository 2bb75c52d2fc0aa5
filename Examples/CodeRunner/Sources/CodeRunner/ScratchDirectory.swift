#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A per-run directory holding the source file; the run's working directory and
/// HOME. Made in the scratch root by descriptor (`mkdirat` with a random name,
/// then `openat` with O_NOFOLLOW), and, when the children run as another user,
/// given to that user with `fchown` on that descriptor: whatever happens to the
/// name meanwhile, only the directory this server made changes owner.
///
/// The descriptor stays open until ``ScratchRemover`` has removed the directory
/// (which closes it): removal starts from the very directory that was made.
struct ScratchDirectory: Sendable {
    let root: ScratchRoot
    /// Its name in the root (letters and digits: made here).
    let name: String
    /// The directory, open O_RDONLY | O_DIRECTORY.
    let descriptor: Int32

    /// Its path, for the child (a working directory and HOME are paths).
    var path: String { "\(root.path)/\(name)" }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func create(in root: ScratchRoot, owner: (uid: UInt32, gid: UInt32)?) throws -> ScratchDirectory {
        for _ in 0..<100 {
            let name = "run-" + randomName(length: 12)
            guard mkdirat(root.descriptor, name, 0o700) == 0 else {
                if errno == EEXIST { continue }
                throw Failure(description: "mkdir \(root.path)/\(name): \(errorText())")
            }
            let fd = openat(root.descriptor, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            var info = stat()
            var problem: String? = nil
            if fd < 0 {
                problem = "open \(root.path)/\(name): \(errorText())"
            } else if fstat(fd, &info) != 0 {
                problem = "fstat \(root.path)/\(name): \(errorText())"
            } else if info.st_uid != geteuid() || info.st_mode & S_IFMT != S_IFDIR {
                // Nobody else may write in the root; if this ever happens, touch nothing.
                problem = "\(root.path)/\(name) is not the directory this server just made"
            } else if let owner, fchown(fd, owner.uid, owner.gid) != 0 {
                problem = "chown \(root.path)/\(name): \(errorText())"
            } else if fchmod(fd, 0o700) != 0 {
                problem = "chmod \(root.path)/\(name): \(errorText())"
            }
            if let problem {
                if fd >= 0 { close(fd) }
                unlinkat(root.descriptor, name, AT_REMOVEDIR)  // empty: nothing ran in it
                throw Failure(description: problem)
            }
            return ScratchDirectory(root: root, name: name, descriptor: fd)
        }
        throw Failure(description: "mkdir in \(root.path): every name tried was taken")
    }

    /// Writes a file readable by the run (owned by the server, mode 0644).
    func writeFile(_ fileName: String, _ bytes: [UInt8]) throws {
        let fd = openat(descriptor, fileName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "create \(path)/\(fileName): \(errorText())") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write \(path)/\(fileName): \(errorText())")
            }
            offset += n
        }
        fchmod(fd, 0o644)
    }

    /// Removes everything in the directory, then the directory, and closes its
    /// descriptor. Blocking: call it on ``ScratchRemover``'s thread only, once no
    /// process of the run is left. Returns what could not be removed.
    func removeNow() -> TreeRemoval.Problems {
        defer { close(descriptor) }
        var problems = TreeRemoval.Problems()
        // A few rounds: something written meanwhile (by another run of the same
        // uid, which knows the path) is found by the next one.
        for _ in 0..<3 {
            problems = TreeRemoval.empty(descriptor)
            if unlinkat(root.descriptor, name, AT_REMOVEDIR) == 0 || errno == ENOENT { return problems }
            guard errno == ENOTEMPTY || errno == EEXIST else { break }
        }
        problems.append("removing \(path): \(errorText())")
        return problems
    }
}
