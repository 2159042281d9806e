import Provisioning
import Testing

/// Expects `parse` to refuse `text` with a `Manifest.Error` at `line` whose message contains `message`.
func expectRefusal(of text: String, line: Int, message: String, by parse: (String) throws -> Manifest) {
    do {
        _ = try parse(text)
        Issue.record("accepted: \(text)")
    } catch let error as Manifest.Error {
        #expect(error.location?.line == line, "\(error)")
        #expect(error.message.contains(message), "\(error)")
    } catch {
        Issue.record("\(error)")
    }
}
