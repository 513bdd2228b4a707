// Trusted proxies and CIDR matching.

import Testing

@testable import SwitchyardCore

struct ProxyPolicyTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.1.2.3", true), ("10.0.0.0/8", "11.0.0.1", false), ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "127.0.0.2", false), ("192.168.1.0/25", "192.168.1.127", true), ("192.168.1.0/25", "192.168.1.128", false),
        ("::1", "::1", true), ("fd00::/8", "fd12:3456::1", true), ("fd00::/8", "fe80::1", false), ("10.0.0.0/8", "::ffff:10.9.9.9", true),
        ("0.0.0.0/0", "8.8.8.8", true), ("2001:db8::/32", "2001:db8:0:0:1::1", true), ("10.0.0.0/8", "not-an-ip", false),
    ])
    func cidrContains(network: String, ip: String, expected: Bool) {
        #expect(CIDR(network)!.contains(ip) == expected)
    }

    @Test func invalidCIDRs() {
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("300.1.1.1") == nil)
        #expect(CIDR("1::2::3") == nil)
        #expect(CIDR("") == nil)
    }

    @Test func forwardedHeadersOnlyFromTrustedPeers() {
        let trusted = [CIDR("10.0.0.0/8")!]
        let viaProxy = ClientView.resolve(
            peer: "10.0.0.5", secure: false, host: "internal:8080", forwardedFor: "203.0.113.7, 10.0.0.5", forwardedHost: "mcp.example.com",
            forwardedProto: "https", trusted: trusted)
        #expect(viaProxy == ClientView(address: "203.0.113.7", scheme: "https", host: "mcp.example.com", viaTrustedProxy: true))
        #expect(viaProxy.origin == "https://mcp.example.com")
        let spoofed = ClientView.resolve(
            peer: "198.51.100.9", secure: false, host: "gw:8080", forwardedFor: "1.2.3.4", forwardedHost: "evil.example",
            forwardedProto: "https",
            trusted: trusted)
        #expect(spoofed == ClientView(address: "198.51.100.9", scheme: "http", host: "gw:8080"))
    }
}
