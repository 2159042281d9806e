import QrexecPolicy
import Testing

/// The cases of Fixtures/reference (issue 17's classes: refusals of the parser,
/// remote qubes, uuid forms, `@adminvm` requests, unknown sources, plain names,
/// `@dispvm` without a default, legacy disposables, internal qubes), each
/// answered by the reference evaluator (scripts/reference/qrexec-policy).
@Suite struct ReferenceCaseTests {
    static let examples = PolicyFixtures.examples(in: "reference")

    @Test(arguments: examples)
    func referenceAnswer(_ example: PolicyFixtures.Example) throws {
        try ReferenceAnswer.check(PolicyFixtures.decide(example.call, example.loader, system: example.system), example.expected)
    }

    /// Where the reference refuses a file with a syntax error, lq refuses the same line with the same message.
    @Test(arguments: examples.filter { $0.expected["error_type"]?.text == "PolicySyntaxError" && $0.expected["stage"]?.text == "load" })
    func sameRefusal(_ example: PolicyFixtures.Example) throws {
        let reason = try #require(example.expected["reason"]?.text)
        let parts = reason.split(separator: ":", maxSplits: 2).map { String($0) }
        let error = try #require(example.loader.load().errors.first)
        #expect(error.location?.line == Int(parts[1]))
        #expect(error.message == String(parts[2].dropFirst()))
        #expect(error.location?.file?.hasSuffix("/" + parts[0]) == true)
    }

    /// The loads the reference crashes on (an include cycle, a file that is not
    /// UTF-8) and the missing legacy directory are clean load errors in lq.
    @Test(arguments: ["include-cycle", "not-utf8", "compat-legacy-missing"])
    func cleanRefusal(_ name: String) throws {
        let example = try #require(Self.examples.first { $0.query["id"]?.text == "error-" + name })
        let errors = example.loader.load().errors
        #expect(errors.count == 1)
        #expect(errors.first?.location?.file?.hasSuffix("/30-case.policy") == true)
    }
}

/// The one-pass JSON writer gives the bytes of the JSON value, for every kind of decision.
@Suite struct DecisionJSONTests {
    @Test func oneCallWriterMatchesTheValue() {
        for example in PolicyFixtures.examples + ReferenceCaseTests.examples {
            let decision = PolicyFixtures.decide(example.call, example.loader, system: example.system)
            var bytes: [UInt8] = []
            decision.appendJSON(to: &bytes)
            #expect(String(decoding: bytes, as: UTF8.self) == decision.json.compactText(), "\(example.testDescription)")
        }
    }
}
