// Reads a YAML (or JSON) config file into the core's config tree. File I/O happens only at startup.

package import SwitchyardCore
internal import Yams
internal import Foundation

package enum ConfigFile {
    /// Loads and validates `path`; paths inside resolve against the file's folder.
    package static func load(path: String) throws(ConfigError) -> GatewayConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("", "cannot read \(path): \((error as NSError).localizedDescription)")
        }
        let dir = (URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path)
        return try parse(text: text, name: path, baseDir: dir)
    }

    /// Parses config text; `name` appears in errors, `baseDir` anchors relative paths.
    package static func parse(text: String, name path: String, baseDir dir: String) throws(ConfigError) -> GatewayConfig {
        let node: Yams.Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw ConfigError("", "\(path) is not valid YAML/JSON: \(String(describing: e).split(separator: "\n").first ?? "")")
        } catch {
            throw ConfigError("", "\(path) is not valid YAML/JSON")
        }
        guard let node else { throw ConfigError("", "\(path) is empty") }
        return try ConfigLoader.load(convert(node), baseDir: dir)
    }

    static func convert(_ n: Yams.Node) -> ConfigNode {
        switch n {
        case .scalar(let s):
            if (s.style == .plain && (s.string == "~" || s.string == "null" || s.string.isEmpty)) {
                return .null
            }
            return .scalar(s.string, quoted: s.style != .plain)
        case .sequence(let seq): return .sequence(seq.map(convert))
        case .mapping(let m): return .mapping(m.map { (k, v) in (k.string ?? "", convert(v)) })
        case .alias: return .null
        }
    }
}
