// Newline framing with CRLF tolerance and a maximum line size.

import Testing

@testable import SwitchyardCore

struct LineFramerTests {
    @Test func framesAcrossChunksAndStripsCR() throws {
        var f = LineFramer(maxLine: 64)
        #expect(try f.append(Array("{\"a\":".utf8)).isEmpty)
        let lines = try f.append(Array("1}\r\n{\"b\":2}\n\npartial".utf8))
        #expect(lines.map { String(decoding: $0, as: UTF8.self) } == [#"{"a":1}"#, #"{"b":2}"#, ""])
        #expect(try f.append(Array("\n".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["partial"])
    }

    @Test func rejectsLinesOverTheLimit() throws {
        var f = LineFramer(maxLine: 8)
        #expect(try f.append(Array("12345678\n".utf8)).count == 1)
        #expect(throws: LineFramer.FramerError.lineTooLong) { try f.append(Array("123456789".utf8)) }
        var g = LineFramer(maxLine: 8)
        #expect(throws: LineFramer.FramerError.lineTooLong) { try g.append(Array("123456789\n".utf8)) }
    }

    @Test(
        arguments: [
            (10, 4, 16, false, LineDecision.line(length: 4, consume: 5)),
            (10, 4, 16, true, .line(length: 3, consume: 5)),
            (10, nil, 16, false, .needMore),
            (17, nil, 16, false, .tooLong),
            (30, 17, 16, false, .tooLong),
            (1, 0, 16, false, .line(length: 0, consume: 1)),
        ] as [(Int, Int?, Int, Bool, LineDecision)])
    func ruleDecides(buffered: Int, newline: Int?, max: Int, cr: Bool, expected: LineDecision) {
        #expect(LineRule.decide(buffered: buffered, newlineAt: newline, maxLine: max, crBeforeNewline: cr) == expected)
    }
}
