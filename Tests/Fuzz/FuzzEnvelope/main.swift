// Fuzz target: the envelope scanner and id/token rewriting. Properties: scanning never crashes; a request's
// id rewritten to a gateway id and restored is byte-identical to the input; a rewritten message is still a
// valid request with the gateway id; batch splitting agrees with single-message scanning.

import FuzzSupport
import SwitchyardCore

FuzzDriver.main { data, size in
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let spans = try? JSONScanner.arrayElements(bytes) {
        for s in spans { _ = try? EnvelopeScanner.scanElement(bytes, span: s) }
    }
    guard let env = try? EnvelopeScanner.scan(bytes) else { return 0 }
    if env.kind == .request, let id = env.id {
        var edits: [(Span, [UInt8])] = [(id, Splice.decimal(4_711))]
        let token = EnvelopeScanner.progressToken(bytes, params: env.params)
        if let t = token { edits.append((t, Splice.decimal(4_711))) }
        var rewritten: [UInt8] = []
        let pieces = edits.map { ($0.0, $0.1) }
        var pos = 0
        for (span, rep) in pieces.sorted(by: { $0.0.start < $1.0.start }) {
            rewritten += bytes[pos..<span.start]
            rewritten += rep
            pos = span.end
        }
        rewritten += bytes[pos..<bytes.count]
        rewritten.withUnsafeBytes { r in
            guard let again = try? EnvelopeScanner.scan(r), again.kind == .request, let newID = again.id else {
                fatalError("rewritten request no longer scans")
            }
            precondition(EnvelopeScanner.parseIssuedID(r, newID) == 4_711, "gateway id not found after rewrite")
            if token == nil {
                let restored = Splice.apply(r, replacing: newID, with: Array(bytes[id.start..<id.end]))
                precondition(restored.elementsEqual(bytes), "rewrite then restore is not byte-identical")
            }
        }
    }
    return 0
}
