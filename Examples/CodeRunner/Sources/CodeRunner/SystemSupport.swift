#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `O_PATH` (not exported by the Glibc module): a descriptor that names a
/// directory without the right to read it. The same value on every Linux
/// architecture Swift supports.
let openPathOnly: Int32 = 0o10_000_000

/// `length` random letters and digits (from the system's random source).
func randomName(length: Int) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    var generator = SystemRandomNumberGenerator()
    return String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
}

/// The current errno, as text and number.
func errorText() -> String {
    let e = errno
    return "\(String(cString: strerror(e))) (errno \(e))"
}
