// Newline-delimited JSON-RPC framing with a maximum line size (stdio transport, S-01/S-06).

/// What to do with the bytes buffered from a child's stdout.
public enum LineDecision: Equatable, Sendable {
    /// A line is complete: `length` bytes of content (CR stripped), `consume` bytes to drop incl. the LF.
    case line(length: Int, consume: Int)
    /// No newline yet and still under the limit.
    case needMore
    /// The current line exceeds the limit: the peer is broken.
    case tooLong
}

/// The framing rule, shared by the evbuffer path (I/O layer) and the byte-array framer below.
public enum LineRule {
    /// Decides given how many bytes are buffered and where the first LF is (nil when absent).
    @inline(__always)
    public static func decide(buffered: Int, newlineAt: Int?, maxLine: Int, crBeforeNewline: Bool) -> LineDecision {
        if let n = newlineAt {
            if n > maxLine { return .tooLong }
            return .line(length: crBeforeNewline ? n - 1 : n, consume: n + 1)
        }
        return buffered > maxLine ? .tooLong : .needMore
    }
}

/// A byte-array line framer for small stdio peers (the demo server) and tests.
public struct LineFramer {
    public let maxLine: Int
    var buffer: [UInt8] = []
    var scanFrom = 0

    public init(maxLine: Int) { self.maxLine = maxLine }

    public enum FramerError: Error, Equatable { case lineTooLong }

    /// Appends bytes and returns every complete line (without CR/LF).
    public mutating func append(_ bytes: some Sequence<UInt8>) throws(FramerError) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var lines: [[UInt8]] = []
        var start = 0
        var k = scanFrom
        while k < buffer.count {
            if buffer[k] == 0x0A {
                let cr = k > start && buffer[k - 1] == 0x0D
                switch LineRule.decide(buffered: buffer.count - start, newlineAt: k - start, maxLine: maxLine, crBeforeNewline: cr) {
                case .line(let length, let consume):
                    lines.append(Array(buffer[start..<(start + length)]))
                    start += consume
                case .tooLong: throw .lineTooLong
                case .needMore: break
                }
            }
            k += 1
        }
        buffer.removeFirst(start)
        scanFrom = buffer.count
        if case .tooLong = LineRule.decide(buffered: buffer.count, newlineAt: nil, maxLine: maxLine, crBeforeNewline: false) {
            throw .lineTooLong
        }
        return lines
    }
}
