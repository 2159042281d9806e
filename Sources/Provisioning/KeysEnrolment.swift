import LQCommon
import QubesStore
import SystemLayer

/// Saving a password or a file for a qube in the offline keys qube from dom0 (docs/split-services.md,
/// "Split password" and "Split file"): core-keys stores it as data and answers with its pin, the
/// template records the pin so the boot guard checks it, then both shut down so core-keys' next start
/// serves it against the new pin. Secrets travel on stdin only, never in a process's arguments.
public struct KeysEnrolment: Sendable {
    public var keysQube: String
    public var template: String
    public var qvmRun: String
    public var qvmShutdown: String

    /// The largest file the keys qube stores (its `lq-splitfile save` limit).
    public static let maxFileSize = 16 << 20

    public init(keysQube: String, template: String, qvmRun: String = "/usr/bin/qvm-run",
                qvmShutdown: String = "/usr/bin/qvm-shutdown") {
        self.keysQube = keysQube
        self.template = template
        self.qvmRun = qvmRun
        self.qvmShutdown = qvmShutdown
    }

    /// Saves `password` as `qube`'s password for `token`; returns the pin's two lines (sha256, sha512).
    public func savePassword(qube: String, token: String, password: [UInt8]) throws -> [String] {
        try checkArgument(token, what: "token")
        guard !password.isEmpty, !password.contains(0x0A), !password.contains(0) else {
            throw ProvisioningError(.invalidArgument, "the password must be one line, not empty")
        }
        return try enrol(
            qube: qube, save: "liteqube.SplitPasswordSave", input: Array("\(qube)\n\(token)\n".utf8) + password + [0x0A],
            pin: "liteqube.SplitPasswordChecksum", pinPrefix: "\(qube)\n")
    }

    /// Saves `content` as the file `name` that `qube` gets with `liteqube.SplitFile+<name>`; returns the
    /// pin's two lines (sha256, sha512).
    public func saveFile(qube: String, name: String, content: [UInt8]) throws -> [String] {
        try checkArgument(name, what: "file name")
        guard content.count <= Self.maxFileSize else { throw ProvisioningError(.invalidArgument, "more than \(Self.maxFileSize >> 20) MiB", path: name) }
        return try enrol(
            qube: qube, save: "liteqube.SplitFileSave", input: Array("\(qube)\n\(name)\n".utf8) + content,
            pin: "liteqube.SplitFileChecksum", pinPrefix: "\(qube)\n\(name)\n")
    }

    /// Saves an OpenSSH private key without passphrase as `qube`'s key `name` (the keys qube's
    /// `/home/user/.ssh/<qube>/<name>`, which only `liteqube.SplitSSH` reads); returns the pin's two lines.
    public func saveSSHKey(qube: String, name: String, key: [UInt8]) throws -> [String] {
        try checkArgument(name, what: "key name")
        if let problem = OpenSSHKey.problem(key) { throw ProvisioningError(.invalidArgument, problem, path: name) }
        return try enrol(
            qube: qube, save: "liteqube.SplitSSHSave", input: Array("\(qube)\n\(name)\n".utf8) + key,
            pin: "liteqube.SplitSSHChecksum", pinPrefix: "\(qube)\n\(name)\n")
    }

    /// Runs `installer` (the split SSH client side) as the user in `qube`, the script on stdin.
    public func installSSHClient(qube: String, installer: String) throws {
        if let problem = QubeName.problem(qube) { throw ProvisioningError(.invalidArgument, "qube '\(qube)': \(problem)") }
        _ = try runProgram(
            qvmRun, ["--pass-io", "--no-gui", "--user", "user", qube, "sh -s"], input: Array(installer.utf8), failure: "\(qube): the split SSH client")
    }

    private func checkArgument(_ text: String, what: String) throws {
        guard isValidArgumentName(Array(text.utf8)) else {
            throw ProvisioningError(.invalidArgument, "\(what) '\(text)': want 1 to 64 of A-Z a-z 0-9 _ . + -, not starting with '.' or '-'")
        }
    }

    /// Stores through `save` in the keys qube, records the pin it answers through `pin` in the template,
    /// then shuts both down.
    private func enrol(qube: String, save: String, input: [UInt8], pin: String, pinPrefix: String) throws -> [String] {
        for name in [qube, keysQube, template] {
            if let problem = QubeName.problem(name) { throw ProvisioningError(.invalidArgument, "qube '\(name)': \(problem)") }
        }
        let answer: ChecksumPin
        do {
            answer = try ChecksumPin(parsing: try service(keysQube, save, input: input))
        } catch let error as ChecksumPin.ParseError {
            throw ProvisioningError(.unexpectedAnswer, "\(save) did not answer with a pin", qube: keysQube, cause: error)
        }
        _ = try service(template, pin, input: Array(pinPrefix.utf8) + answer.fileBytes)
        for name in [template, keysQube] { _ = try runProgram(qvmShutdown, ["--wait", name], failure: "\(name): qvm-shutdown") }
        return String(decoding: answer.fileBytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// Calls `service` in `qube` as root with `input` on stdin; its stdout, or an error naming it.
    private func service(_ qube: String, _ service: String, input: [UInt8]) throws -> [UInt8] {
        try runProgram(qvmRun, ["--pass-io", "--no-gui", "--user", "root", "--service", qube, service], input: input, failure: "\(qube): \(service)").output
    }
}
