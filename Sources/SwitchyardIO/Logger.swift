// Structured logs: one logfmt line per event on stderr (stdout stays clean), written with write(2).

package import SwitchyardCore
internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

package final class Logger {
    package var level: LogLevel

    package init(level: LogLevel) { self.level = level }

    @inline(__always) package func enabled(_ l: LogLevel) -> Bool { l >= level }

    package func debug(_ msg: StaticString, _ fields: @autoclosure () -> [(String, String)] = []) { log(.debug, msg, fields()) }
    package func info(_ msg: StaticString, _ fields: @autoclosure () -> [(String, String)] = []) { log(.info, msg, fields()) }
    package func warn(_ msg: StaticString, _ fields: @autoclosure () -> [(String, String)] = []) { log(.warning, msg, fields()) }
    package func error(_ msg: StaticString, _ fields: @autoclosure () -> [(String, String)] = []) { log(.error, msg, fields()) }

    package func log(_ l: LogLevel, _ msg: StaticString, _ fields: [(String, String)]) {
        guard l >= level else { return }
        var line = "ts=\(Logger.timestamp()) level=\(l.name) msg=\(msg)"
        for (k, v) in fields {
            line += " \(k)="
            line += Logger.quoteIfNeeded(v)
        }
        line += "\n"
        line.withUTF8 { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(2, p.baseAddress! + off, p.count - off)
                if n <= 0 { return }
                off += n
            }
        }
    }

    static func quoteIfNeeded(_ v: String) -> String {
        if !v.isEmpty && !v.utf8.contains(where: { $0 <= 0x20 || $0 == 0x22 || $0 == 0x3D || $0 == 0x5C || $0 >= 0x7F }) {
            return v
        }
        var out = "\""
        for u in v.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += "\\u{\(String(u.value, radix: 16))}" } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return
            "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
