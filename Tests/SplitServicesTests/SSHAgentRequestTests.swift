import SplitServices
import Testing

/// The agent requests a client qube may send (docs/split-services.md, "Split SSH").
@Suite struct SSHAgentRequestTests {
    static func string(_ bytes: [UInt8]) -> [UInt8] { SSHAgentRequestTests.uint32(bytes.count) + bytes }
    static func uint32(_ value: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }

    @Test func listAndWellFormedSignPassEverythingElseIsRefused() {
        #expect(SSHAgentRequest(body: [11]) == .listKeys)
        let key: [UInt8] = Array("ssh-ed25519 blob".utf8)
        #expect(SSHAgentRequest(body: [13] + Self.string(key) + Self.string([1, 2, 3]) + Self.uint32(4))
            == .sign(keyBlob: key, dataCount: 3, flags: 4))
        let refusedTypes: [UInt8] = [17, 18, 19, 22, 23, 25, 26, 27, 0, 255]
        for type in refusedTypes {
            guard case .refused(let refused, _) = SSHAgentRequest(body: [type, 0, 0, 0, 0]) else {
                Issue.record("type \(type) passed")
                continue
            }
            #expect(refused == type)
        }
    }

    @Test(arguments: [
        ([UInt8]([]), "empty message"),
        ([11, 0], "a key list request carries no data"),
        ([13], "a malformed sign request"),
        ([13, 0, 0, 0, 5, 1, 2], "a malformed sign request"),
        ([13, 0, 0, 0, 1, 9, 0, 0, 0, 1, 7, 0, 0, 0], "a malformed sign request"),
        ([13, 0, 0, 0, 1, 9, 0, 0, 0, 1, 7, 0, 0, 0, 0, 1], "a malformed sign request"),
        ([13, 0, 1, 0, 0], "a malformed sign request"),
    ])
    func malformedRequestsAreRefused(body: [UInt8], reason: String) {
        guard case .refused(_, let said) = SSHAgentRequest(body: body) else {
            Issue.record("\(body) passed")
            return
        }
        #expect(said == reason)
    }

    @Test func frameLengthsOutsideOneTo256KiBAreRefused() {
        #expect(SSHAgentRequest.length(header: [0, 0, 0, 1]) == 1)
        #expect(SSHAgentRequest.length(header: [0, 4, 0, 0]) == 256 * 1024)
        #expect(SSHAgentRequest.length(header: [0, 4, 0, 1]) == nil)
        #expect(SSHAgentRequest.length(header: [0, 0, 0, 0]) == nil)
        #expect(SSHAgentRequest.length(header: [0xff, 0xff, 0xff, 0xff]) == nil)
        #expect(SSHAgentRequest.length(header: [0, 0, 1]) == nil)
    }
}
