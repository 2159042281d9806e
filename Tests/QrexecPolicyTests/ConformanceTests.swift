import QrexecPolicy
import QubesStore
import Testing

/// Every worked example of spec §11 gives the reference evaluator's answer.
@Suite struct ConformanceTests {
    @Test func allExamplesAreThere() {
        #expect(PolicyFixtures.examples.count == 107)
    }

    @Test(arguments: PolicyFixtures.examples)
    func workedExample(_ example: PolicyFixtures.Example) throws {
        try ReferenceAnswer.check(PolicyFixtures.decide(example.call, example.loader), example.expected)
    }

    /// The tab-separated form of the fixtures answers the same.
    @Test func tabSeparatedQueries() throws {
        let answers = try PolicyFixtures.text("expected-output-tsv.jsonl").split(separator: "\n")
        let lines = try PolicyFixtures.text("queries.tsv").split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(lines.count == answers.count)
        let loader = PolicyLoader(directories: [PolicyFixtures.path("policy.d")], legacyDirectory: PolicyFixtures.path("legacy"))
        for (line, answer) in zip(lines, answers) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map { $0 == "-" ? "" : String($0) }
            let decision = PolicyFixtures.decide(Call(service: fields[0], argument: fields[1], source: fields[2], target: fields[3]), loader)
            #expect(answer.contains("\"decision\": \"\(decision.name)\""), "\(line)")
            if case .allow(let target, _, _, _) = decision.outcome { #expect(answer.contains("\"target\": \"\(target)\"")) }
        }
    }
}
