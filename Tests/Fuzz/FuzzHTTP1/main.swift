// Fuzz target: HTTP/1.1 request framing (SwitchyardCore.HTTP1) on arbitrary bytes. Properties: no crash;
// every range the parser returns lies inside the head; a head it accepts ends with its empty line;
// the chunked decoder consumes no more than it was given, emits ranges inside its input, emits exactly
// `total` body bytes once done, and gives the same body however the input is split.

import FuzzSupport
import SwitchyardCore

FuzzDriver.main { data, size in
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var fields: [HTTPField] = []
    if let len = HTTP1.headLength(bytes) {
        precondition(len >= 2 && len <= size, "head length out of range")
        precondition(bytes[len - 1] == 0x0A, "a head ends with LF")
        let head = UnsafeRawBufferPointer(rebasing: bytes[0..<len])
        if let h = try? HTTP1.parseHead(head, fields: &fields, maxBody: 1 << 20) {
            precondition(h.path.upperBound <= len && h.path.lowerBound >= 0, "path out of range")
            if let q = h.query { precondition(q.upperBound <= len && q.lowerBound >= h.path.upperBound, "query out of range") }
            for f in fields {
                precondition(f.name.upperBound <= len && f.value.upperBound <= len && !f.name.isEmpty, "field out of range")
                precondition(f.name.upperBound < f.value.lowerBound || f.value.isEmpty, "value before its name")
            }
            if case .length(let n) = h.framing { precondition(n > 0 && n <= 1 << 20, "length outside the limit") }
        }
    }
    _ = HTTP1.hasRequestLine(bytes)
    let skip = HTTP1.leadingEmptyLines(bytes)
    precondition(skip <= size, "skipped past the end")

    // Chunked bodies: whole, and split at a point taken from the data.
    func decode(_ parts: [UnsafeRawBufferPointer]) -> (body: [UInt8], done: Bool, total: Int)? {
        var d = ChunkedDecoder()
        var body: [UInt8] = []
        for part in parts {
            guard
                let used = try? d.decode(
                    part, maxBody: 1 << 16,
                    emit: { r in
                        precondition(r.lowerBound >= 0 && r.upperBound <= part.count, "emitted range outside the input")
                        body.append(contentsOf: part[r])
                    })
            else { return nil }
            precondition(used <= part.count, "consumed more than given")
            if d.isDone { break }
            precondition(used == part.count, "stopped early without being done")
        }
        return (body, d.isDone, d.total)
    }
    let whole = decode([bytes])
    if let w = whole, w.done { precondition(w.body.count == w.total, "body length differs from the chunk sizes") }
    if size > 1 {
        let cut = Int(bytes[0]) % size
        let split = decode([UnsafeRawBufferPointer(rebasing: bytes[0..<cut]), UnsafeRawBufferPointer(rebasing: bytes[cut...])])
        if let w = whole, let s = split, w.done { precondition(s.done && s.body == w.body, "split changed the body") }
    }
    return 0
}
