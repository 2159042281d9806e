import BootProtect
import LQCommon
import Provisioning
import SplitServices

/// The targets of files a qube, a volume or the user hands to lq.
let fileTargets = [
    FuzzTarget(
        name: "manifest",
        property: "a manifest that parses names every role with a valid qube name and a positive memory, and "
            + "parses the same twice; a refusal is a Manifest.Error", run: manifest),
    FuzzTarget(
        name: "guard-settings",
        property: "the settings written back as KEY=1/0 parse to the same settings without issues; "
            + "issues name lines of the file and never quote a value", run: guardSettings),
    FuzzTarget(
        name: "checksum",
        property: "a pin file that parses writes back as two lower-case lines that parse to the same pin", run: checksum),
    FuzzTarget(
        name: "nm-keyfile",
        property: "a keyfile with a secret key line is found secret; the served name is one qrexec argument "
            + "component of the same length in characters", run: keyfile),
    FuzzTarget(
        name: "blkid",
        property: "blkid output that parses gives keys of A-Z 0-9 _ and values without newline, and the same "
            + "properties from its lines written back", run: blkid),
]

func manifest(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    do {
        let parsed = try Manifest.parse(text, file: "liteqube.yaml")
        require((try? Manifest.parse(text, file: "liteqube.yaml")) == parsed, "two parses differ")
        for (role, name) in parsed.names { require(isValidQubeName(name), "role \(role) named '\(name)'") }
        for component in parsed.components {
            for spec in component.roles { require(parsed.memory(of: spec.role) > 0, "role \(spec.role) has no memory") }
        }
    } catch {
        require(error is Manifest.Error, "a refusal that is no Manifest.Error: \(type(of: error)) \(error)")
    }
}

/// The guard's keys in the order the settings file lists them (docs/boot-guard.md, "Settings").
var settingKeys: [(String, KeyPath<Settings, Bool>)] { [
    ("ACTIVE", \.active), ("DEBUG", \.debug), ("POWEROFF", \.powerOff), ("QUARANTINE", \.quarantine),
    ("ALLOW_ROGUE", \.allowRogue), ("DEPLOY_MISSING", \.deployMissing), ("OBSCURE", \.obscure),
] }

func guardSettings(_ bytes: [UInt8]) {
    let (settings, issues) = Settings.parse(bytes)
    let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count
    for issue in issues {
        require((1...lines).contains(issue.line), "issue on line \(issue.line) of \(lines)")
        require(quotesNoValue(issue.message), "an issue quotes the input: \(issue.message)")
    }
    let written = settingKeys.map { "\($0.0)=\(settings[keyPath: $0.1] ? 1 : 0)\n" }.joined()
    let again = Settings.parse(Array(written.utf8))
    require(again.settings == settings && again.issues.isEmpty, "the settings written back read differently")
}

/// Whether `message` is one of the settings issues, naming a known key or a key of `A-Z a-z 0-9 _` (or `?`).
func quotesNoValue(_ message: String) -> Bool {
    func isKeyText(_ text: Substring) -> Bool { text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") } }
    if message == "not KEY=VALUE; ignored" { return true }
    if message.hasPrefix("unknown setting "), message.hasSuffix("; ignored") {
        let key = message.dropFirst("unknown setting ".count).dropLast("; ignored".count)
        return key == "?" || isKeyText(key)
    }
    if message.hasPrefix("unknown value for "), message.hasSuffix(" (want Yes or No); read as No") {
        let key = message.dropFirst("unknown value for ".count).dropLast(" (want Yes or No); read as No".count)
        return settingKeys.contains { $0.0 == key }
    }
    return false
}

func checksum(_ bytes: [UInt8]) {
    guard let pin = try? ChecksumPin(parsing: bytes) else { return }
    let file = pin.fileBytes
    require(file.count == 64 + 1 + 128 + 1, "the pin file is not two lines of 64 and 128 digits")
    require(file.allSatisfy { $0 == 0x0A || (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }, "not lower-case hex")
    require((try? ChecksumPin(parsing: file)) == pin, "the pin file does not parse to the same pin")
}

func keyfile(_ bytes: [UInt8]) {
    let parts = parts(bytes, 2)
    let name = String(decoding: parts[0], as: UTF8.self)
    let content = String(decoding: parts.count > 1 ? parts[1] : [], as: UTF8.self)
    let connection = NetworkConnection(name: name, content: content)
    require(connection.hasSecret == NetworkConnection.hasSecret(content), "hasSecret differs from the content's")
    let served = connection.servedName
    require(served.unicodeScalars.count == name.unicodeScalars.count, "the served name has another length")
    require(served.utf8.allSatisfy(isQrexecArgumentByte), "the served name '\(served)' is no qrexec argument")
    require(NetworkConnection.hasSecret(content + "\npsk=x\n"), "a psk line added to a keyfile is not found secret")
}

func blkid(_ bytes: [UInt8]) {
    guard let properties = try? StorageSignal.properties(bytes) else { return }
    for (key, value) in properties {
        require(!key.isEmpty && key.utf8.allSatisfy { (0x41...0x5A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }, "key '\(key)'")
        require(!value.utf8.contains(0x0A), "a value holds a newline")
    }
    guard properties.allSatisfy({ $0.key.utf8.count + $0.value.utf8.count < 4096 }) else { return }
    var written: [UInt8] = []
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) { written += Array((key + "=" + value + "\n").utf8) }
    require((try? StorageSignal.properties(written)) == properties, "the properties written back parse differently")
    _ = StorageSignal.outcome(device: "sda", properties: properties, size: 1 << 30, isPartition: false)
}
