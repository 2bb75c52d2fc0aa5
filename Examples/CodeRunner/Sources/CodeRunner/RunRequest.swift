import Foundation

/// A language the server runs.
public enum Language: String, Sendable, CaseIterable {
    case python3
    case sh

    /// The name of the source file in the scratch directory.
    var fileName: String {
        switch self {
        case .python3: "main.py"
        case .sh: "main.sh"
        }
    }

    /// The arguments after the interpreter for a source file.
    func arguments(sourcePath: String) -> [String] {
        switch self {
        // -I: isolated (no PYTHON* variables, no user site, no script directory on
        // sys.path); -u: unbuffered, so output streams as it is printed; -B: no .pyc.
        case .python3: ["-I", "-u", "-B", sourcePath]
        case .sh: [sourcePath]
        }
    }

    static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A validated `POST /run` request.
public struct RunJob: Sendable {
    public var language: Language
    public var source: String
    public var stdin: [UInt8]?
    public var limits: RunLimits
}

/// A request the server refuses, with a message for the client (400).
public struct BadRequest: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }
}

/// Any JSON value, decoded strictly (a number is never a boolean and vice versa).
enum JSONValue: Decodable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension RunJob {
    static let limitKeys = ["cpu_seconds", "memory_bytes", "wall_seconds", "output_bytes"]

    /// Parses and validates a request body against the server's defaults and maxima.
    /// Throws ``BadRequest`` with a message that names the offending field.
    static func parse(_ body: [UInt8], defaults: RunLimits, maxima: RunLimits) throws(BadRequest) -> RunJob {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            throw BadRequest(
                "the request body is empty: send a JSON object such as {\"language\": \"python3\", \"source\": \"print(1)\"}"
            )
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw BadRequest("the request body is not valid JSON: \(describe(body))")
        }
        guard case .object(let fields) = value else {
            throw BadRequest("the request body must be a JSON object, not \(value.typeName)")
        }
        let known = ["language", "source", "stdin", "limits"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw BadRequest("unknown field '\(unknown)' (known fields: \(known.joined(separator: ", ")))")
        }

        guard let languageValue = fields["language"] else {
            throw BadRequest("missing field 'language' (one of: \(Language.supportedList))")
        }
        guard case .string(let languageName) = languageValue else {
            throw BadRequest(
                "field 'language' must be a string (one of: \(Language.supportedList)), not \(languageValue.typeName)")
        }
        guard let language = Language(rawValue: languageName) else {
            throw BadRequest("unknown language '\(languageName)' (supported: \(Language.supportedList))")
        }

        guard let sourceValue = fields["source"] else { throw BadRequest("missing field 'source' (the program text)") }
        guard case .string(let source) = sourceValue else {
            throw BadRequest("field 'source' must be a string, not \(sourceValue.typeName)")
        }

        var stdin: [UInt8]? = nil
        switch fields["stdin"] {
        case nil, .null?: break
        case .string(let s)?: stdin = Array(s.utf8)
        case let other?: throw BadRequest("field 'stdin' must be a string, not \(other.typeName)")
        }

        var limits = defaults
        switch fields["limits"] {
        case nil, .null?: break
        case .object(let given)?:
            if let unknown = given.keys.sorted().first(where: { !limitKeys.contains($0) }) {
                throw BadRequest("unknown field 'limits.\(unknown)' (known: \(limitKeys.joined(separator: ", ")))")
            }
            func number(_ key: String, maximum: Double, unit: String) throws(BadRequest) -> Double? {
                switch given[key] {
                case nil, .null?: return nil
                case .number(let d)?:
                    guard d.isFinite, d > 0 else {
                        throw BadRequest("limits.\(key) must be a positive number, not \(d)")
                    }
                    guard d <= maximum else {
                        throw BadRequest(
                            "limits.\(key) is \(format(d)), above this server's maximum of \(format(maximum)) \(unit)")
                    }
                    return d
                case let other?:
                    throw BadRequest("limits.\(key) must be a number, not \(other.typeName)")
                }
            }
            if let v = try number("cpu_seconds", maximum: Double(maxima.cpuSeconds), unit: "seconds") {
                limits.cpuSeconds = Int(v.rounded(.up))
            }
            if let v = try number("memory_bytes", maximum: Double(maxima.memoryBytes), unit: "bytes") {
                limits.memoryBytes = Int(v.rounded(.up))
            }
            if let v = try number("wall_seconds", maximum: maxima.wallSeconds, unit: "seconds") {
                limits.wallSeconds = v
            }
            if let v = try number("output_bytes", maximum: Double(maxima.outputBytes), unit: "bytes") {
                limits.outputBytes = Int(v.rounded(.up))
            }
        case let other?:
            throw BadRequest("field 'limits' must be an object, not \(other.typeName)")
        }
        return RunJob(language: language, source: source, stdin: stdin, limits: limits)
    }

    private static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? "\(Int64(d))" : "\(d)"
    }

    /// JSONDecoder says only "not valid JSON"; JSONSerialization tells where.
    private static func describe(_ body: [UInt8]) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        }
        return "not parseable"
    }
}
