// Session ids from OpenSSL's CSPRNG.

internal import COpenSSL

package enum SecureRandom {
    /// `count` random bytes as lowercase hex (e.g. 16 bytes → 32 chars, 128 bits).
    package static func hex(bytes count: Int) -> String {
        var raw = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&raw, Int32(count)) == 1 else { preconditionFailure("RAND_bytes failed: no entropy") }
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for b in raw {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
