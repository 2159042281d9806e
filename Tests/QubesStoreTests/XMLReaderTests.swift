import LQCommon
import QubesStore
import Testing

@Suite struct XMLReaderTests {
    func parse(_ text: String, limits: XMLReader.Limits = .store) throws -> XMLDocument {
        try XMLReader.parse(Array(text.utf8), limits: limits)
    }

    func syntaxError(_ text: String, limits: XMLReader.Limits = .store) -> StoreError? {
        do {
            _ = try parse(text, limits: limits)
            return nil
        } catch let error as StoreError {
            return error
        } catch {
            return nil
        }
    }

    @Test func textFollowsLxml() throws {
        let document = try parse("<a><b>x<!--c-->y</b><c/><d></d><e>1<f/>2</e></a>")
        let children = Array(document.root.children)
        #expect(children[0].text == "x")
        #expect(children[1].text == nil)
        #expect(children[2].text == nil)
        #expect(children[3].text == "1")
        #expect(children[3].children.map(\.name) == ["f"])
    }

    @Test func referencesCDATAAndLineEnds() throws {
        let document = try parse("<a v=\"x&#9;y\tz&quot;\">&lt;&amp;&#x41;<![CDATA[<&>]]>\r\nend</a>")
        #expect(document.root.attribute("v") == "x\ty z\"")
        #expect(document.root.text == "<&A<&>\nend")
    }

    @Test func internalEntitiesExpandAndAreCapped() throws {
        let document = try parse("<!DOCTYPE a [<!ENTITY e \"v&#65;\"><!ENTITY f \"&e;&e;\">]><a x=\"&f;\">&f;</a>")
        #expect(document.root.text == "vAvA")
        #expect(document.root.attribute("x") == "vAvA")
        #expect(document.hasDoctype)
        var laughs = "<!DOCTYPE a [<!ENTITY l0 \"aaaaaaaaaa\">"
        for level in 1...7 { laughs += "<!ENTITY l\(level) \"" + String(repeating: "&l\(level - 1);", count: 10) + "\">" }
        laughs += "]><a>&l7;</a>"
        let error = syntaxError(laughs)
        #expect(error?.kind == .xmlSyntaxError)
        #expect(error?.message.contains("amplification") == true)
        #expect(syntaxError("<!DOCTYPE a [<!ENTITY l \"&l;\">]><a>&l;</a>")?.message.contains("loop") == true)
    }

    @Test func externalEntitiesAreRefused() {
        let error = syntaxError("<!DOCTYPE a [<!ENTITY ext SYSTEM \"file:///etc/passwd\">]><a>&ext;</a>")
        #expect(error?.message == "Entity 'ext' not defined")
        #expect(error?.location == SourceLocation(line: 1, column: 60))
    }

    @Test func depthIsLimited() throws {
        let deep = String(repeating: "<x>", count: 256) + String(repeating: "</x>", count: 256)
        #expect(try parse(deep).root.name == "x")
        let tooDeep = String(repeating: "<x>", count: 257) + String(repeating: "</x>", count: 257)
        #expect(syntaxError(tooDeep)?.message.contains("depth") == true)
        let strictDeep = String(repeating: "<x>", count: 33) + String(repeating: "</x>", count: 33)
        #expect(syntaxError(strictDeep, limits: .untrusted) != nil)
    }

    @Test func valueSizesAreLimited() {
        let big = String(repeating: "a", count: (64 << 10) + 1)
        #expect(syntaxError("<a v=\"\(big)\"/>", limits: .untrusted)?.message.contains("limit") == true)
        #expect(syntaxError("<a>\(big)</a>", limits: .untrusted)?.message.contains("limit") == true)
        #expect(syntaxError("<a v=\"\(big)\"/>") == nil)
        var limits = XMLReader.Limits.untrusted
        limits.maxFileSize = 100
        #expect(syntaxError("<a>\(String(repeating: "b", count: 100))</a>", limits: limits) != nil)
    }

    @Test func untrustedInputHasNoDTD() {
        #expect(syntaxError("<!DOCTYPE a [<!ENTITY e \"v\">]><a>&e;</a>", limits: .untrusted)?.message.contains("DOCTYPE") == true)
    }

    @Test func malformedInputIsRejectedWithPosition() {
        let cases = [
            "", "<a>", "<a></b>", "<a b=\"1\" b=\"2\"/>", "<a>\u{1}</a>", "<a>&#1;</a>", "<a>&#0;</a>", "<a b=c/>",
            "<a/><b/>", "<a><!-- x -- y --></a>", "text", "<a>&unknown;</a>", "<a b=\"<\"/>",
        ]
        for text in cases {
            let error = syntaxError(text)
            #expect(error?.kind == .xmlSyntaxError, "\(text.debugDescription) should be rejected")
            #expect(error?.location != nil)
        }
        let invalidUTF8: [UInt8] = Array("<a>".utf8) + [0xC3, 0x28] + Array("</a>".utf8)
        #expect(throws: StoreError.self) { try XMLReader.parse(invalidUTF8) }
    }

    @Test func latin1DeclarationIsDecoded() throws {
        let bytes: [UInt8] = Array("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>".utf8) + [0xE9] + Array("</a>".utf8)
        let document = try XMLReader.parse(bytes)
        #expect(document.root.text == "é")
        #expect(document.declaredEncoding == "ISO-8859-1")
    }

    /// Every proper prefix of a document is refused with a `StoreError` (the root is never closed).
    @Test func truncatedInputIsRefused() throws {
        let text = "<!DOCTYPE q [<!ENTITY e \"x\">]><q a=\"1\"><b c='2'>t&e;&#65;<![CDATA[z]]><!--c--><?p i?></b></q>"
        let bytes = Array(text.utf8)
        for length in 0..<bytes.count {
            #expect(throws: StoreError.self, "\(length) bytes") { try XMLReader.parse(Array(bytes[0..<length])) }
        }
        #expect(try XMLReader.parse(bytes).root.children.first?.text == "txAz")
    }

    @Test func childrenSkipDescendantsAndKeepTheirAttributes() throws {
        let root = try parse("<a n='0'><b n='1'><c n='2'/><d><e n='3' m='4'/></d></b><f n='5'>t</f></a>").root
        #expect(root.children.map(\.name) == ["b", "f"])
        let b = try #require(root.children.first)
        #expect(b.children.map(\.name) == ["c", "d"])
        #expect(b.children.flatMap(\.children).map(\.name) == ["e"])
        #expect(b.children.flatMap(\.children).first?.attributes.map(\.value) == ["3", "4"])
        #expect(root.children.map { $0.attribute("n") } == ["1", "5"])
        #expect(root.children(named: "f").first?.text == "t")
        #expect(b.children.first?.children.isEmpty == true)
    }
}

@Suite struct RobustnessTests {
    /// Mutated stores either load or fail with a `StoreError`; a store that
    /// loads saves (or is refused as qubesd's save refuses it), and its save
    /// loads and saves again to the same bytes.
    @Test func mutatedStoresLoadAndRoundTripOrAreRefused() throws {
        let original = try Fixtures.bytes(Fixtures.bundled.appendingPathComponent("valid/qubes-mini.xml"))
        var random = SplitMix64(seed: 2026)
        var (refused, roundTrips) = (0, 0)
        let interesting: [UInt8] = Array("<>/&;=\"' \n\u{0}\u{1}\u{80}\u{FF}-_#a0".utf8)
        for round in 0..<3000 {
            var bytes = original
            for _ in 0..<(1 + Int(random.next() % 8)) {
                let position = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 4 {
                case 0: bytes[position] = interesting[Int(random.next() % UInt64(interesting.count))]
                case 1: bytes.remove(at: position)
                case 2: bytes.insert(interesting[Int(random.next() % UInt64(interesting.count))], at: position)
                default:
                    let length = min(Int(random.next() % 200), bytes.count - position)
                    bytes.removeSubrange(position..<(position + length))
                }
            }
            let loaded: LoadedStore
            do {
                loaded = try Store.load(xml: bytes)
            } catch is StoreError {
                refused += 1
                continue
            } catch {
                Issue.record("round \(round): unexpected error \(error)")
                continue
            }
            let saved: [UInt8]
            do {
                saved = try XMLWriter.write(loaded.store)
            } catch is StoreError {
                continue  // qubesd's save fails on the same stores (a label without a color)
            }
            #expect(try XMLWriter.write(try Store.load(xml: saved).store) == saved, "round \(round): the save of a save differs")
            #expect(!StoreDump.json(loaded.store, effective: true).canonicalBytes().isEmpty)
            roundTrips += 1
        }
        #expect(refused > 100 && roundTrips > 100, "refused \(refused), round trips \(roundTrips)")
    }
}
