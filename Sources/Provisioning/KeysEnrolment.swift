import BootProtect
import QubesStore

/// Saving a password for a qube in the offline keys qube from dom0 (spec §4.1 SplitPasswordSave and
/// SplitPasswordChecksum, `lq-addkey password`): core-keys stores it as data and answers with the
/// store's pin, the template records the pin so the boot guard checks the store, then both shut down so
/// core-keys' next start serves the new store against the new pin. The password travels on stdin only
/// (the original put it in a dom0 process's arguments).
public struct KeysEnrolment: Sendable {
    public var keysQube: String
    public var template: String
    public var qvmRun: String
    public var qvmShutdown: String

    public init(keysQube: String = "core-keys", template: String = "debian-core", qvmRun: String = "/usr/bin/qvm-run",
                qvmShutdown: String = "/usr/bin/qvm-shutdown") {
        self.keysQube = keysQube
        self.template = template
        self.qvmRun = qvmRun
        self.qvmShutdown = qvmShutdown
    }

    /// Saves `password` as `qube`'s password for `token`; returns the pin's two lines (sha256, sha512).
    public func savePassword(qube: String, token: String, password: [UInt8]) throws -> [String] {
        for name in [qube, keysQube, template] {
            if let problem = QubeName.problem(name) { throw ProvisioningError("qube '\(name)': \(problem)") }
        }
        let tokenBytes = Array(token.utf8)
        guard !tokenBytes.isEmpty, tokenBytes.count <= 64, tokenBytes.allSatisfy(isQrexecArgumentByte),
            tokenBytes.first != UInt8(ascii: "."), tokenBytes.first != UInt8(ascii: "-")
        else { throw ProvisioningError("token '\(token)': want 1 to 64 of A-Z a-z 0-9 _ . + -, not starting with '.' or '-'") }
        guard !password.isEmpty, !password.contains(0x0A), !password.contains(0) else {
            throw ProvisioningError("the password must be one line, not empty")
        }
        let saved = try service(keysQube, "liteqube.SplitPasswordSave", input: Array("\(qube)\n\(token)\n".utf8) + password + [0x0A])
        let pin = String(decoding: saved, as: UTF8.self).split(separator: "\n").map(String.init)
        guard pin.count == 2, pin[0].count == 64, pin[1].count == 128, pin.allSatisfy({ $0.allSatisfy(\.isHexDigit) }) else {
            throw ProvisioningError("\(keysQube): liteqube.SplitPasswordSave did not answer with a sha256 and a sha512 line")
        }
        _ = try service(template, "liteqube.SplitPasswordChecksum", input: Array("\(qube)\n\(pin[0])\n\(pin[1])\n".utf8))
        for name in [template, keysQube] {
            let result = try runProgram(qvmShutdown, ["--wait", name])
            guard result.status == 0 else { throw ProvisioningError("\(name): qvm-shutdown failed with status \(result.status)") }
        }
        return pin
    }

    /// Calls `service` in `qube` as root with `input` on stdin; its stdout, or an error naming it.
    private func service(_ qube: String, _ service: String, input: [UInt8]) throws -> [UInt8] {
        let result = try runProgram(qvmRun, ["--pass-io", "--no-gui", "--user", "root", "--service", qube, service], input: input)
        guard result.status == 0 else { throw ProvisioningError("\(qube): \(service) refused (status \(result.status))") }
        return result.output
    }
}
