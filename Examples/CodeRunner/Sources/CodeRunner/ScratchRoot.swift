#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `/`, O_PATH (outside the type, whose `open` would hide the C function).
private func openRoot() -> Int32 {
    open("/", openPathOnly | O_DIRECTORY | O_CLOEXEC)
}

/// The directory the runs' scratch directories are made in, open for the
/// server's whole life: every run directory is made, and removed, relative to
/// this descriptor, never by path.
///
/// Only the server may change its entries, so no run can plant, rename or swap
/// one (say, a run directory for a symlink between its creation and its chown):
/// - without `--scratch-root`, a fresh directory with a random name under
///   `$TMPDIR` (or /tmp), made by this server (mode 0711) and removed at exit;
/// - with `--scratch-root`, the given directory must be owned by the server's
///   uid, not writable by its group or others, and not a symlink; every directory
///   above it must belong to root or the server's uid and be writable by nobody
///   else (or sticky, like /tmp). Anything else is a startup error naming the
///   problem. A given root that does not exist is made as above (and removed at
///   exit).
final class ScratchRoot: Sendable {
    /// Its path, for the runs (their working directory is a path) and for logs.
    let path: String
    /// The directory, open O_RDONLY | O_DIRECTORY.
    let descriptor: Int32
    /// When this server made it: the directory holding it (open) and its name there.
    let made: (parent: Int32, name: String)?

    private init(path: String, descriptor: Int32, made: (parent: Int32, name: String)?) {
        self.path = path
        self.descriptor = descriptor
        self.made = made
    }

    deinit {
        close(descriptor)
        if let made { close(made.parent) }
    }

    struct Problem: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Opens and checks the given root, or makes a fresh one under `temporaryDirectory`.
    static func open(given: String?, temporaryDirectory: String) throws(Problem) -> ScratchRoot {
        guard let given else { return try make(in: temporaryDirectory) }
        var absolute = given.hasPrefix("/") ? given : currentDirectory() + "/" + given
        while absolute.count > 1 && absolute.hasSuffix("/") { absolute.removeLast() }
        guard let slash = absolute.lastIndex(of: "/"), absolute != "/" else {
            throw Problem("the scratch root \(given) cannot be /")
        }
        let name = String(absolute[absolute.index(after: slash)...])
        let above = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
        if name == "." || name == ".." { throw Problem("the scratch root \(given) must not end in . or ..") }

        let parent = try openTrustedDirectory(above)
        var made: (parent: Int32, name: String)? = nil
        var fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 && errno == ENOENT && mkdirat(parent, name, 0o700) == 0 {
            made = (parent, name)
            fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard fd >= 0 else {
            let problem = describeUnopenable(parent, name, path: absolute)
            close(parent)
            throw problem
        }
        do {
            try checkOwnedAndPrivate(fd, path: absolute)
        } catch {
            close(fd)
            close(parent)
            throw error
        }
        if made == nil {
            close(parent)
        } else {
            // 0711: the sandbox user may pass through to its own run directory, not list it.
            fchmod(fd, 0o711)
        }
        return ScratchRoot(path: absolute, descriptor: fd, made: made)
    }

    /// A fresh `code-runner-XXXXXXXXXXXX` in `temporaryDirectory`, mode 0711.
    private static func make(in temporaryDirectory: String) throws(Problem) -> ScratchRoot {
        let parent = try openTrustedDirectory(temporaryDirectory)
        for _ in 0..<100 {
            let name = "code-runner-" + randomName(length: 12)
            guard mkdirat(parent, name, 0o700) == 0 else {
                if errno == EEXIST { continue }
                let problem = Problem("cannot make a scratch root in \(temporaryDirectory): \(errorText())")
                close(parent)
                throw problem
            }
            let path = (temporaryDirectory.hasSuffix("/") ? temporaryDirectory : temporaryDirectory + "/") + name
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            do throws(Problem) {
                guard fd >= 0 else { throw Problem("cannot open the scratch root \(path) just made: \(errorText())") }
                try checkOwnedAndPrivate(fd, path: path)
            } catch {
                if fd >= 0 { close(fd) }
                unlinkat(parent, name, AT_REMOVEDIR)
                close(parent)
                throw error
            }
            fchmod(fd, 0o711)
            return ScratchRoot(path: path, descriptor: fd, made: (parent, name))
        }
        close(parent)
        throw Problem("cannot make a scratch root in \(temporaryDirectory): every name tried was taken")
    }

    /// Removes the root and everything in it, if this server made it (at exit,
    /// once no run is left). Returns what could not be removed.
    func removeIfMade() -> TreeRemoval.Problems {
        guard let made else { return TreeRemoval.Problems() }
        var problems = TreeRemoval.empty(descriptor)
        if unlinkat(made.parent, made.name, AT_REMOVEDIR) != 0 {
            problems.append("removing the scratch root \(path): \(errorText())")
        }
        return problems
    }

    /// The root itself: a directory of the server's uid that nobody else may write.
    private static func checkOwnedAndPrivate(_ fd: Int32, path: String) throws(Problem) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Problem("cannot check the scratch root \(path): \(errorText())") }
        if info.st_uid != geteuid() {
            throw Problem(
                "the scratch root \(path) is owned by uid \(info.st_uid), not by this server's uid \(geteuid())")
        }
        if info.st_mode & S_IWOTH != 0 {
            throw Problem("the scratch root \(path) is writable by others (mode \(octal(info.st_mode)))")
        }
        if info.st_mode & S_IWGRP != 0 {
            throw Problem("the scratch root \(path) is writable by its group (mode \(octal(info.st_mode)))")
        }
    }

    /// Why `name` in `parent` cannot be opened as a directory, without following it.
    private static func describeUnopenable(_ parent: Int32, _ name: String, path: String) -> Problem {
        let openError = errorText()
        var info = stat()
        if fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            if info.st_mode & S_IFMT == S_IFLNK { return Problem("the scratch root \(path) is a symbolic link") }
            if info.st_mode & S_IFMT != S_IFDIR { return Problem("the scratch root \(path) is not a directory") }
        }
        return Problem("cannot open the scratch root \(path): \(openError)")
    }

    /// Opens `path` (symlinks resolved once, by `realpath`), then walks it again
    /// from / by descriptor, O_NOFOLLOW, checking that each directory belongs to
    /// root or this server's uid and that nobody else may write in it (unless it
    /// is sticky): no one else can rename what lies below. Returns an O_PATH descriptor.
    private static func openTrustedDirectory(_ path: String) throws(Problem) -> Int32 {
        guard let resolved = realpath(path, nil) else {
            throw Problem("cannot resolve \(path), the directory of the scratch root: \(errorText())")
        }
        let canonical = String(cString: resolved)
        free(resolved)
        var fd = openRoot()
        var walked = ""
        let components = canonical.split(separator: "/").map(String.init)
        for index in 0...components.count {
            if index > 0 {
                walked += "/" + components[index - 1]
                let next = openat(fd, components[index - 1], openPathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                close(fd)
                guard next >= 0 else {
                    throw Problem("cannot open \(walked), above the scratch root: \(errorText())")
                }
                fd = next
            }
            guard fd >= 0 else { throw Problem("cannot open /: \(errorText())") }
            let shown = walked.isEmpty ? "/" : walked
            var info = stat()
            guard fstat(fd, &info) == 0 else {
                let problem = Problem("cannot check \(shown), above the scratch root: \(errorText())")
                close(fd)
                throw problem
            }
            let problem: String? =
                if info.st_uid != 0 && info.st_uid != geteuid() {
                    "is owned by uid \(info.st_uid)"
                } else if info.st_mode & S_ISVTX == 0 && info.st_mode & S_IWOTH != 0 {
                    "is writable by others"
                } else if info.st_mode & S_ISVTX == 0 && info.st_mode & S_IWGRP != 0 {
                    "is writable by its group"
                } else {
                    nil
                }
            if let problem {
                close(fd)
                throw Problem(
                    "\(shown), a directory above the scratch root, \(problem) (mode \(octal(info.st_mode))): "
                        + "others could replace what lies below it")
            }
        }
        return fd
    }

    private static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    private static func octal(_ mode: mode_t) -> String {
        "0" + String(mode & 0o7777, radix: 8)
    }
}
