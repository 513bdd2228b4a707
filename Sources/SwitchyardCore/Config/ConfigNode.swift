// A parsed configuration document, independent of the YAML/JSON library that produced it.

/// A config tree: mappings keep their key order (the first server of a Claude Desktop file matters).
public indirect enum ConfigNode: Equatable, Sendable {
    case scalar(String, quoted: Bool)
    case sequence([ConfigNode])
    case mapping([(String, ConfigNode)])
    case null

    public static func == (a: ConfigNode, b: ConfigNode) -> Bool {
        switch (a, b) {
        case (.scalar(let x, let q1), .scalar(let y, let q2)): return x == y && q1 == q2
        case (.sequence(let x), .sequence(let y)): return x == y
        case (.mapping(let x), .mapping(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.null, .null): return true
        default: return false
        }
    }

    public subscript(key: String) -> ConfigNode? {
        if case .mapping(let m) = self { return m.first { $0.0 == key }?.1 }
        return nil
    }
}

/// A bad config: the key path and the problem, printed as one line (exit code 78).
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }
    /// One line, always: control characters from keys or values are escaped.
    public var description: String {
        let text = path.isEmpty ? "config: \(problem)" : "config: \(path): \(problem)"
        var out = ""
        for u in text.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0) || u.value == 0x2028 || u.value == 0x2029 {
                    out += "\\u{\(String(u.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
