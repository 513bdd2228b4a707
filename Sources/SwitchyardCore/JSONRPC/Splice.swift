// Replaces one value span (an id, a requestId) and forwards every other byte unchanged.

public enum Splice {
    /// Emits `bytes` with `span` replaced by `replacement`, as three borrowed pieces handed to `sink`.
    @inline(__always)
    public static func write(
        _ bytes: UnsafeRawBufferPointer, replacing span: Span, with replacement: UnsafeRawBufferPointer,
        to sink: (UnsafeRawBufferPointer) -> Void
    ) {
        sink(UnsafeRawBufferPointer(rebasing: bytes[0..<span.start]))
        sink(replacement)
        sink(UnsafeRawBufferPointer(rebasing: bytes[span.end..<bytes.count]))
    }

    /// Convenience for tests and control messages: returns the spliced bytes.
    public static func apply(_ bytes: UnsafeRawBufferPointer, replacing span: Span, with replacement: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count - span.count + replacement.count)
        replacement.withUnsafeBytes { r in write(bytes, replacing: span, with: r) { out.append(contentsOf: $0) } }
        return out
    }

    /// The decimal text of a gateway-issued id.
    public static func decimal(_ n: Int) -> [UInt8] { Array(String(n).utf8) }
}
