// Helpers shared by both test targets (AsyncSpawnTests and spawnTests): the
// AddressSanitizer check, /proc reads without Foundation, the probe child
// built without instrumentation, and sysprobe (the seccomp tests' child).
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// True when this test process runs under AddressSanitizer (`swift test
/// --sanitize=address`): the runtime's entry point is then linked in (and the
/// library, and the `spawn` binary of the same build, are instrumented too).
///
/// Tests that bound this process's resident memory skip those bounds then:
/// ASan's shadow memory, redzones and quarantine (freed memory is held back,
/// 256 MiB by default) move RSS by far more than the bounds allow.
public let isAddressSanitized: Bool = dlsym(nil, "__asan_init") != nil

/// True under AddressSanitizer or ThreadSanitizer (`--sanitize=thread`): the
/// test runner and the products of the build are instrumented. Both runtimes
/// reserve terabytes of shadow address space (a child under an address-space
/// limit cannot start) and install signal handlers of their own, so the probe
/// child is then built without instrumentation (``UninstrumentedProbe``); and
/// both move RSS far past the tests' bounds, which are then skipped.
public let isSanitized: Bool = isAddressSanitized || dlsym(nil, "__tsan_init") != nil

public enum ProcFS {
    /// The whole content of a (/proc) file, read until end of file; nil when it
    /// cannot be opened. Not FileManager.contents(atPath:) or Data(contentsOf:):
    /// FoundationEssentials leaks a 4 KiB buffer on every read of an empty file
    /// that reports size 0, such as a kernel thread's cmdline (LeakSanitizer
    /// showed 145 MB of it after a test that scans /proc every 2 ms).
    public static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            result += chunk[0..<n]
        }
        return result
    }
}

public enum UninstrumentedProbe {
    /// Tests/Probe/main.c compiled with gcc (once per test process, into a
    /// directory of its own removed at exit), for runs under a sanitizer: a
    /// sanitized build of `spawn-probe` (what `--sanitize=address` or `=thread`
    /// makes of it) cannot reserve its shadow memory under an address-space limit, and
    /// installs signal handlers of its own, which the probe would then report.
    /// The probe is the child under test, not the code under test.
    /// The same name as the built product: tests look it up on PATH.
    public static let path: String = GCC.build("Probe/main.c", as: "spawn-probe", flags: ["-D_GNU_SOURCE"])
}

/// Tests/Fixtures/sysprobe.c compiled with gcc (once per test process): makes one
/// system call named by its first argument and prints "MODE ok" or "MODE errno N".
/// The seccomp tests of both targets run it under filters.
public enum SysProbeBinary {
    public static let path: String = GCC.build("Fixtures/sysprobe.c", as: "sysprobe", flags: ["-pthread"])
}

/// Builds a C file of Tests/ with gcc into a directory of its own, removed at exit.
enum GCC {
    /// Started with posix_spawn and waited for by pid (not Foundation.Process):
    /// a test may run a thread that reaps foreign children, and an ECHILD here
    /// only means the compiler has already finished.
    static func build(_ relativePath: String, as name: String, flags: [String] = []) -> String {
        let source = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(relativePath).path
        var template = Array("/tmp/asyncspawn-\(name)-gcc-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(p != nil, "mkdtemp failed")
        let dir = String(cString: p!)
        chmod(dir, 0o755)  // like the build directory: children that drop their uid can exec it
        directories.withLock { $0.append(dir) }
        _ = cleanupAtExit
        let output = dir + "/" + name
        let argv = ["gcc", "-O1"] + flags + ["-o", output, source]
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, "gcc", nil, nil, &cArgs, environ)
        precondition(rc == 0, "cannot start gcc to build \(source): \(String(cString: strerror(rc)))")
        var status: Int32 = 0
        var r: pid_t
        repeat { r = waitpid(pid, &status, 0) } while r < 0 && errno == EINTR
        if r == pid {
            precondition(status == 0, "gcc failed to build \(source) (wait status \(status))")
        }
        precondition(access(output, X_OK) == 0, "gcc did not produce \(output)")
        return output
    }

    /// The builds' directories, for the atexit clean-up.
    private static let directories = Mutex<[String]>([])
    private static let cleanupAtExit: Void = {
        atexit {
            for dir in GCC.directories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: dir) }
        }
    }()
}

/// Copies `source` to `destination` (created, mode `mode`) through close-on-exec
/// descriptors. Not FileManager.copyItem: a descriptor open for writing that a
/// concurrently spawned process inherited would make the exec of the copy fail
/// with ETXTBSY.
public func copyExecutable(_ source: String, to destination: String, mode: mode_t = 0o755) throws {
    guard let bytes = ProcFS.readFile(source) else { throw PreconditionUnmet("cannot read \(source)") }
    let fd = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw PreconditionUnmet("cannot create \(destination): errno \(errno)") }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw PreconditionUnmet("cannot write \(destination): errno \(errno)") }
        offset += n
    }
    fchmod(fd, mode)
}
