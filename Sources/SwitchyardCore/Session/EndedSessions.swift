// Remembers why recent sessions ended, so a 404 can say more than "not found". Bounded FIFO.
//
// Ids are kept packed (16 bytes, no heap allocation per entry): when 10,000 clients leave at once, one
// small String per ended session was scattered across the heap just freed by their connections and kept
// ~18 MB of it from going back to the kernel.

public struct EndedSessions {
    /// A session id (32 lowercase hex characters, what the gateway issues) as two integers.
    struct Key: Hashable {
        var hi: UInt64
        var lo: UInt64

        init?(_ id: String) {
            var hi: UInt64 = 0
            var lo: UInt64 = 0
            var n = 0
            for c in id.utf8 {
                let d: UInt64
                switch c {
                case 0x30...0x39: d = UInt64(c - 0x30)
                case 0x61...0x66: d = UInt64(c - 0x61 + 10)
                default: return nil
                }
                if n < 16 { hi = hi << 4 | d } else if n < 32 { lo = lo << 4 | d } else { return nil }
                n += 1
            }
            guard n == 32 else { return nil }
            self.hi = hi
            self.lo = lo
        }
    }

    public let capacity: Int
    var reasons: [Key: CloseReason] = [:]
    var order: [Key] = []
    var head = 0

    public init(capacity: Int) { self.capacity = capacity }

    /// Records why `id` ended. Ids that are not 32 lowercase hex characters were never issued: ignored.
    public mutating func record(_ id: String, _ reason: CloseReason) {
        guard capacity > 0, let key = Key(id) else { return }
        if reasons.isEmpty && order.isEmpty {
            reasons.reserveCapacity(capacity)
            order.reserveCapacity(capacity)
        }
        if reasons[key] == nil {
            if order.count < capacity {
                order.append(key)
            } else {
                reasons[order[head]] = nil
                order[head] = key
                head = (head + 1) % capacity
            }
        }
        reasons[key] = reason
    }

    public func reason(_ id: String) -> CloseReason? { Key(id).flatMap { reasons[$0] } }
    public var count: Int { reasons.count }
}
