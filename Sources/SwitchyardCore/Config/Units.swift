// Durations ("500ms", "30s", "5m", "1h") and byte sizes ("4MiB", "64KiB") in config values.

public enum Units {
    /// Parses a duration into milliseconds. A bare number means seconds.
    public static func durationMillis(_ s: String) -> Int? {
        let t = s.trimmingCharacters()
        let table: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        // Anything beyond ~30 years is a typo, not a timeout; it must not overflow Int either.
        let limit = 1e12
        for (suffix, scale) in table where t.hasSuffix(suffix) {
            let num = t.dropLast(suffix.count)
            // "5m" must not be read as "5" + "m" when the suffix is "ms" etc: the table order handles it.
            if let v = Double(num), v >= 0, v * scale <= limit { return Int(v * scale) }
            return nil
        }
        if let v = Double(t), v >= 0, v * 1000 <= limit { return Int(v * 1000) }
        return nil
    }

    /// Parses a byte size. Suffixes: B, KiB/KB/K, MiB/MB/M, GiB/GB/G (all binary).
    public static func bytes(_ s: String) -> Int? {
        let t = s.trimmingCharacters()
        let table: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, scale) in table where t.hasSuffix(suffix) {
            guard let v = Int(t.dropLast(suffix.count).trimmingCharacters()), v >= 0 else { return nil }
            return v.multipliedReportingOverflow(by: scale).overflow ? nil : v * scale
        }
        if let v = Int(t), v >= 0 { return v }
        return nil
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
