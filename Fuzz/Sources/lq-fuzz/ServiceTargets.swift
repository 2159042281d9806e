import LQCommon
import SplitServices

/// The targets of what qubes send the split services and the USB and Tor helpers.
let serviceTargets = [
    FuzzTarget(
        name: "service-request",
        property: "an accepted argument (a split file name, a password token, a Tor network name) is one path "
            + "component of A-Z a-z 0-9 _ . + - not starting with . or -, at most 64 bytes; an accepted caller is a "
            + "qube name; an accepted device is sdX/xvdX with a short partition number", run: serviceRequest),
    FuzzTarget(
        name: "password-store",
        property: "a password store that parses writes back to the same bytes", run: passwordStore),
    FuzzTarget(
        name: "ssh-agent",
        property: "of the frames a client sends, only a bare key list or a sign request whose three fields fill "
            + "the body exactly passes; every other body is refused with its type", run: sshAgent),
]

/// The input as a client's stream: frames read as the keys qube reads them, until one is out of range.
func sshAgent(_ bytes: [UInt8]) {
    var rest = bytes[...]
    while rest.count >= 4, let length = SSHAgentRequest.length(header: Array(rest.prefix(4))) {
        require((1...SSHAgentRequest.maxLength).contains(length), "a frame of \(length) bytes accepted")
        let body = Array(rest.dropFirst(4).prefix(length))
        rest = rest.dropFirst(4 + length)
        switch SSHAgentRequest(body: body) {
        case .listKeys:
            require(body == [11], "a key list request with data passed")
        case .sign(let key, let dataCount, _):
            require(body.first == 13 && key.count <= SSHAgentRequest.maxKeyBlob, "a sign request with a key blob of \(key.count) bytes")
            require(body.count == 1 + 4 + key.count + 4 + dataCount + 4, "a sign request that does not fill its body exactly")
            require(Array(body[5..<(5 + key.count)]) == key, "the key blob passed is not the one sent")
        case .refused(let type, _):
            require(type == body.first, "a refusal names type \(String(describing: type)), not the body's first byte")
        }
    }
}

func serviceRequest(_ bytes: [UInt8]) {
    if let name = try? validateArgument(bytes, what: "network name") {
        require(Array(name.utf8) == bytes, "the accepted name is not the bytes sent")
        require(!bytes.isEmpty && bytes.count <= 64, "an accepted name of \(bytes.count) bytes")
        require(bytes.allSatisfy(isQrexecArgumentByte) && !bytes.contains(UInt8(ascii: "/")), "an accepted name with a bad byte")
        require(bytes[0] != UInt8(ascii: ".") && bytes[0] != UInt8(ascii: "-"), "an accepted name starting with . or -")
    }
    let text = String(decoding: bytes, as: UTF8.self)
    if let caller = try? validateCaller(text) { require(isValidQubeName(caller), "an accepted caller '\(caller)'") }
    if let device = try? StorageSignal.validateDevice(text) {
        require(device.utf8.count <= 8 && (device.hasPrefix("sd") || device.hasPrefix("xvd")), "an accepted device '\(device)'")
        require(device.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }, "an accepted device '\(device)'")
    }
}

func passwordStore(_ bytes: [UInt8]) {
    guard let store = try? PasswordStore.parse(bytes, name: "password-work") else { return }
    require(store.bytes == bytes, "the store does not write back to its bytes")
    for entry in store.entries { require(store.password(for: entry.token) == entry.password, "token \(entry.token) not found") }
}
