#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A per-run directory holding the source file; the run's working directory and HOME.
/// Created with `mkdtemp` (mode 0700) and, when the children run as another user,
/// given to that user so that the run can read its source and write scratch files.
struct ScratchDirectory: Sendable {
    let path: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func create(in root: String, owner: (uid: UInt32, gid: UInt32)?) throws -> ScratchDirectory {
        var template = Array("\(root)/run-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw Failure(description: "mkdtemp in \(root): \(errorText())") }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let directory = ScratchDirectory(path: path)
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            let text = errorText()
            directory.remove()
            throw Failure(description: "chown \(path): \(text)")
        }
        return directory
    }

    /// Writes a file readable by the run (owned by the server, mode 0644).
    func writeFile(_ name: String, _ bytes: [UInt8]) throws {
        let file = "\(path)/\(name)"
        let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "create \(file): \(ScratchDirectory.errorText())") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write \(file): \(ScratchDirectory.errorText())")
            }
            offset += n
        }
        fchmod(fd, 0o644)
    }

    /// Removes the directory and everything the run left in it, whatever modes it set.
    func remove() {
        ScratchDirectory.removeTree(path)
    }

    /// Like `rm -rf`, but also through directories the run made unreadable (chmod 000):
    /// without root's CAP_DAC_OVERRIDE those need their mode restored first.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            if let dir = opendir(path) {
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                        String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for name in names { removeTree("\(path)/\(name)") }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    static func errorText() -> String {
        let e = errno
        return "\(String(cString: strerror(e))) (errno \(e))"
    }
}
