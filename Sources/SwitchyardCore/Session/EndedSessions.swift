// Remembers why recent sessions ended, so a 404 can say more than "not found". Bounded FIFO.

public struct EndedSessions {
    public let capacity: Int
    var reasons: [String: CloseReason] = [:]
    var order: [String] = []
    var head = 0

    public init(capacity: Int) { self.capacity = capacity }

    public mutating func record(_ id: String, _ reason: CloseReason) {
        guard capacity > 0 else { return }
        if reasons[id] == nil {
            if order.count < capacity {
                order.append(id)
            } else {
                reasons[order[head]] = nil
                order[head] = id
                head = (head + 1) % capacity
            }
        }
        reasons[id] = reason
    }

    public func reason(_ id: String) -> CloseReason? { reasons[id] }
    public var count: Int { reasons.count }
}
