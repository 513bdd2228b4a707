// An owned evbuffer that the server fills and hands to a response, a stream or a child's stdin.

internal import CLibEvent

/// Bytes on their way out. Moving it into a reply or a pipe empties it (zero copy).
package final class OutBuffer {
    let buf: OpaquePointer

    package init() {
        guard let b = evbuffer_new() else { preconditionFailure("evbuffer_new failed") }
        buf = b
    }

    deinit { evbuffer_free(buf) }

    package var count: Int { evbuffer_get_length(buf) }

    /// Drops whatever is left (a hand-off that did not happen, e.g. to a closed pipe).
    package func clear() {
        let n = evbuffer_get_length(buf)
        if n > 0 { evbuffer_drain(buf, n) }
    }

    package func append(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0 { evbuffer_add(buf, base, bytes.count) }
    }

    package func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    package func append(_ s: StaticString) {
        evbuffer_add(buf, s.utf8Start, s.utf8CodeUnitCount)
    }

    package func append(_ s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends `n` in decimal.
    package func append(decimal n: Int) {
        append(String(n))
    }
}
