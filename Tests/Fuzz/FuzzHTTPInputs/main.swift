// Fuzz target: everything the gateway parses from an HTTP head — route, query session id, Accept,
// Content-Type, Origin, auth header extraction, CIDR and forwarded-header handling. Property: no crash,
// and decisions are consistent (e.g. an extracted secret is never empty).

import FuzzSupport
import SwitchyardCore

FuzzDriver.main { data, size in
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let parts = text.split(separator: "\n", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
    let a = parts.first ?? ""
    let b = parts.count > 1 ? parts[1] : ""
    _ = Route.parse(a)
    _ = Route.legacySessionID(query: b)
    _ = AcceptSet(header: a)
    _ = MediaType.isJSON(contentType: b)
    _ = OriginPolicy(allowed: [b]).permits(a)
    for header in ["Authorization", "X-MCP-Token"] {
        if case .success(let secret) = AuthPolicy.presentedSecret(header: header, values: [a], query: b) {
            precondition(!secret.isEmpty, "empty secret accepted")
        }
    }
    if let c = CIDR(a) { _ = c.contains(b) }
    let view = ClientView.resolve(
        peer: a, secure: false, host: b, forwardedFor: b, forwardedHost: a, forwardedProto: b, trusted: [CIDR("0.0.0.0/0")!])
    _ = view.origin
    _ = Units.durationMillis(a)
    _ = Units.bytes(a)
    _ = ConfigLoader.parseAddress(a)
    return 0
}
