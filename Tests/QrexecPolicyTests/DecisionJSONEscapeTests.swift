import Foundation
import LQCommon
import QrexecPolicy
import Testing

/// `lq policy eval --json` writes decisions in one pass (`Decision.appendJSON`):
/// its strings in the compact form every lq JSON output uses (`\"`, `\\`,
/// `\n`, other control characters and DEL as `\u00XX`, the rest raw UTF-8),
/// and read back by any JSON reader as the same text.
@Suite struct DecisionJSONEscapeTests {
    static let awkward = ["plain", "quo\"te", "back\\slash", "new\nline", "tab\tunit\u{1F}", "del\u{7F}", "wérk ✓", "", "x/y"]

    static func line(_ decision: Decision) -> String {
        var output: [UInt8] = []
        decision.appendJSON(to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    @Test func askTargetsAreEscapedInTheCompactForm() throws {
        let text = Self.line(Decision(outcome: .ask(targets: AskChoices(Self.awkward), defaultTarget: "quo\"te", user: nil, notify: false, autostart: true)))
        #expect(
            text.contains(
                #""targets": ["plain", "quo\"te", "back\\slash", "new\nline", "tab\u0009unit\u001f", "del\u007f", "wérk ✓", "", "x/y"]"#))
        #expect(text.contains(#""default_target": "quo\"te""#))
        let decoded = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(decoded["targets"] as? [String] == Self.awkward)
    }

    @Test(arguments: awkward)
    func everyStringSurvivesARoundTrip(_ reason: String) throws {
        let text = Self.line(Decision(outcome: .deny(reason: reason, notify: true)))
        let decoded = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(decoded["reason"] as? String == reason)
        #expect(try JSONReader.parse(Array(text.utf8)).member("reason") == .string(reason))
    }

    @Test func emptyTargetListIsAnEmptyArray() {
        #expect(Self.line(Decision(outcome: .ask(targets: [], defaultTarget: nil, user: nil, notify: false, autostart: true))).contains(#""targets": []"#))
    }
}
