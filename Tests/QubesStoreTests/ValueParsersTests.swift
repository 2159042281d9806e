import QubesStore
import Testing
import LQCommon

@Suite struct ValueParsersTests {
    @Test func pythonIntAcceptsWhatPythonAccepts() {
        #expect(ValueParsers.pythonInt(" 4_00 ") == "400")
        #expect(ValueParsers.pythonInt("+3") == "3")
        #expect(ValueParsers.pythonInt("-0") == "0")
        #expect(ValueParsers.pythonInt("٤٠٠٠") == "4000")
        #expect(ValueParsers.pythonInt("007") == "7")
        #expect(ValueParsers.pythonInt("99999999999999999999999") == "99999999999999999999999")
        for bad in ["", " ", "0x190", "400.0", "abc", "4__0", "_4", "4_", "+", "1 2"] {
            #expect(ValueParsers.pythonInt(bad) == nil, "\(bad.debugDescription)")
        }
    }

    @Test func boolLiterals() {
        #expect(ValueParsers.bool("On") == true)
        #expect(ValueParsers.bool("no") == false)
        #expect(ValueParsers.bool(" true") == nil)
        #expect(ValueParsers.bool("2") == nil)
    }

    @Test func uuids() {
        #expect(ValueParsers.uuid("{0F8FAD5B-D9CB-469F-A165-70867728950E}") == "0f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(ValueParsers.uuid("urn:uuid:0f8fad5bd9cb469fa16570867728950e") == "0f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(ValueParsers.uuid("not-a-uuid") == nil)
    }

    @Test func addresses() throws {
        #expect(try ValueParsers.ipv4("10.137.0.8").get() == "10.137.0.8")
        #expect(throws: StoreError.self) { try ValueParsers.ipv4("10.137.0.300").get() }
        #expect(throws: StoreError.self) { try ValueParsers.ipv4("10.137.0.08").get() }
        #expect(try ValueParsers.ipv6("FD09:24EF:4179:0000:0000:0000:0A89:000E").get() == "fd09:24ef:4179::a89:e")
        #expect(try ValueParsers.ipv6("1:0:0:2:0:0:0:3").get() == "1:0:0:2::3")
        #expect(try ValueParsers.ipv6("1:0:2:3:4:5:6:7").get() == "1:0:2:3:4:5:6:7")
        #expect(try ValueParsers.ipv6("::ffff:1.2.3.4").get() == "::ffff:102:304")
        #expect(throws: StoreError.self) { try ValueParsers.ipv6("1::2::3").get() }
    }

    @Test func devicesDeniedIsSortedAndDeduplicated() throws {
        #expect(try ValueParsers.devicesDenied("u0300**b0102**u0300**").get() == "b0102**u0300**")
        #expect(throws: StoreError.self) { try ValueParsers.devicesDenied("x0102**").get() }
        #expect(throws: StoreError.self) { try ValueParsers.devicesDenied("u03").get() }
    }

    @Test func paths() {
        #expect(ValueParsers.normalizedPath("/x//y/../z/") == "/x/z")
        #expect(ValueParsers.normalizedPath("/../a") == "/a")
        #expect(ValueParsers.normalizedPath("a/./b/..") == "a")
    }

    @Test func qubeNames() {
        #expect(QubeName.problem("sys-net") == nil)
        #expect(QubeName.problem("0bad name!") != nil)
        #expect(QubeName.problem("work-dm") != nil)
        #expect(QubeName.problem(String(repeating: "a", count: 32)) != nil)
        #expect(QubeName.problem("default") != nil)
    }
}
