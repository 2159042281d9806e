import QrexecPolicy
import QubesStore
import Testing

/// Syntax errors carry file, line, column and what was expected; hostile input never crashes.
@Suite struct ParserTests {
    /// Loads one file of text from memory and returns the errors.
    func errors(_ text: String, limits: PolicyLimits = PolicyLimits(), extra: [String: String] = [:]) -> [PolicyError] {
        var files = extra
        files["/p/30-test.policy"] = text
        return PolicyLoader(directories: ["/p"], legacyDirectory: "/legacy", limits: limits,
                            fileSystem: MemoryPolicyFiles(files)).load().errors
    }

    @Test(arguments: [
        ("lq.E  *  @anyvm  @vm:work  allow", "invalid target token: '@vm:work'", 18),
        ("lq.E  *  @default  work  allow", "invalid source token: '@default'", 10),
        ("lq.E  alpha  @anyvm  @anyvm  allow", "argument 'alpha' does not start with +", 7),
        ("lq.E+x  *  @anyvm  @anyvm  allow", "service 'lq.E+x' contains invalid characters: ('+',)", 1),
        ("lq.E * @anyvm @anyvm allow notify=true", "'notify' is 'true', but can be only 'yes' or 'no'", 28),
        ("lq.E * @anyvm @anyvm allow user=a user=b", "parameter given twice: 'user'", 35),
        ("lq.E * @anyvm @anyvm permit", "invalid action: permit", 22),
        ("  !include-file x", "invalid directive", 3),
        ("lq.E * @anyvm allow", "wrong number of fields", 1),
        ("lq.E * @anyvm @anyvm ask default_target=@tag:x", "invalid redirect token: '@tag:x'", 26),
    ])
    func errorPosition(_ line: String, _ message: String, _ column: Int) throws {
        let found = errors("# comment\n\n" + line)
        try #require(found.count == 1)
        #expect(found[0].code == .syntax)
        #expect(found[0].message == message)
        #expect(found[0].location?.file == "/p/30-test.policy")
        #expect(found[0].location?.line == 3)
        #expect(found[0].location?.column == column)
        #expect(found[0].expected != nil)
        #expect(found[0].description.hasPrefix("/p/30-test.policy:3:\(column): \(message) (expected "))
    }

    @Test func everyErrorIsReportedNotJustTheFirst() {
        let found = errors("a * @x b allow\nb * c d permit\nc * e f allow\n!bogus")
        #expect(found.map(\.location?.line) == [1, 2, 4])
    }

    @Test func pythonLineEndingsAndWhitespace() throws {
        // \r ends a line as in Python text mode; a no-break space separates fields.
        let policy = try PolicyFixtures.policy("a * work vault allow\r# comment\r\nb\u{A0}*\u{2003}work\tvault deny")
        #expect(policy.rules.map(\.origin.line) == [1, 3])
        #expect(policy.rules[1].description == "b * work vault deny")
    }

    @Test func uppercaseFileNameRefusesTheWholeDirectory() {
        let load = PolicyLoader(directories: ["/p"], legacyDirectory: "/l",
                                fileSystem: MemoryPolicyFiles(["/p/30-Case.policy": "a * b c allow", "/p/10-ok.policy": ""])).load()
        #expect(load.errors.map(\.code) == [.invalidFileName])
    }

    @Test func limitsAreErrorsNotCrashes() {
        #expect(errors(String(repeating: "x", count: 100), limits: PolicyLimits(maxLineLength: 50)).map(\.code) == [.limit])
        #expect(errors(String(repeating: "# x\n", count: 100), limits: PolicyLimits(maxFileSize: 64)).map(\.code) == [.limit])
        // An include loop is named as such; a deep chain stops at the depth limit.
        let loop = errors("!include 30-test.policy", limits: PolicyLimits(maxIncludeDepth: 5))
        #expect(loop.map(\.code) == [.includeCycle])
        #expect(loop.first?.message == "include cycle: /p/30-test.policy -> /p/30-test.policy")
        let chain = errors("!include c0", limits: PolicyLimits(maxIncludeDepth: 5),
                           extra: Dictionary(uniqueKeysWithValues: (0..<8).map { ("/p/c\($0)", "!include c\($0 + 1)") }))
        #expect(chain.map(\.code) == [.limit])
        let many = errors("!include-dir d", limits: PolicyLimits(maxFiles: 3),
                          extra: Dictionary(uniqueKeysWithValues: (0..<5).map { ("/p/d/\($0).policy", "") }))
        #expect(many.contains { $0.code == .limit })
    }

    @Test func invalidUTF8IsAnError() {
        var files = MemoryPolicyFiles()
        files.files["/p/30-x.policy"] = [0x61, 0xFF, 0x0A]
        let load = PolicyLoader(directories: ["/p"], legacyDirectory: "/l", fileSystem: files).load()
        #expect(load.errors.map(\.code) == [.unreadable])
    }

    /// Every prefix of every fixture file, and seeded random byte soup: a
    /// policy that loads decides every call; one that does not is refused with
    /// errors naming the file (and the line, when the file could be read); a
    /// system-info or call list that does not parse is refused naming its file.
    @Test func truncatedAndGarbageInputIsDecidedOrRefused() throws {
        var inputs: [[UInt8]] = []
        for name in ["policy.d/20-tokens.policy", "policy.d/30-include.policy", "policy.d/include/lq-old", "system-info.json"] {
            let bytes = try PolicyFixtures.bytes(name)
            inputs += (0...bytes.count).map { Array(bytes[..<$0]) }
        }
        var random = SplitMix64(seed: 42)
        let alphabet = Array("@*+=,$!#:\t \n\r-.abcdefgz019".utf8) + [0x00, 0x80, 0xC2, 0xA0, 0xE2, 0x80, 0xFF]
        for _ in 0..<2000 {
            let count = Int(random.next() % 120)
            inputs.append((0..<count).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
        }
        let system = PolicyFixtures.system
        for input in inputs {
            var files = MemoryPolicyFiles(["/p/include/x": "a * b c allow"])
            files.files["/p/30-x.policy"] = input
            files.files["/l/svc+arg"] = input
            files.files["/p/40-compat.policy"] = Array("!compat-4.0\n!include-service s * 30-x.policy\n".utf8)
            let load = PolicyLoader(directories: ["/p"], legacyDirectory: "/l", fileSystem: files).load()
            do {
                _ = try SystemInfo(json: input, file: "in.json")
            } catch {
                #expect(error.location?.file == "in.json" && error.description.contains("in.json"), "\(error)")
            }
            do {
                _ = try Call.list(json: input, file: "calls.json")
            } catch {
                #expect(error.location?.file == "calls.json" && error.description.contains("calls.json"), "\(error)")
            }
            for error in load.errors {
                #expect(["/p/30-x.policy", "/l/svc+arg"].contains(error.location?.file ?? ""), "\(error)")
                #expect(error.code == .unreadable || error.location?.line != nil, "\(error)")
            }
            if load.errors.isEmpty {
                let decision = PolicyEvaluator(policy: load.policy, system: system).evaluate(Call(service: "s", source: "work", target: ""))
                #expect(!decision.name.isEmpty)
            }
        }
    }
}
