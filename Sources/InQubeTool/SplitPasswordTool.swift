import ArgumentParser
import Glibc
import SplitServices

/// `lq-splitpassword`: Liteqube's SplitPassword, both sides, and the save and pin steps.
public struct SplitPasswordTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-splitpassword",
        abstract: "Hand a qube its passwords from the offline keys qube over qrexec (liteqube.SplitPassword).",
        discussion: """
            Passwords live in <store>/password-<caller>: data (a header line, then TOKEN<tab>BASE64 lines), \
            owned by the service user, mode 0600, pinned by sha256 and sha512 lines in the template's \
            checksum.core-keys tree, which the boot guard verifies. Exit status: 0 done, 1 refused, 2 usage.
            """,
        subcommands: [Serve.self, Get.self, Save.self, Pin.self])

    public init() {}
}

/// `UID:GID`.
struct Owner: ExpressibleByArgument {
    var user: UInt32
    var group: UInt32

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let user = UInt32(parts[0]), let group = UInt32(parts[1]) else { return nil }
        self.user = user
        self.group = group
    }

    var defaultValueDescription: String { "\(user):\(group)" }
}

/// Where the template keeps the pins of what core-keys stores (the `pin` subcommands).
struct PinOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The rules folder.", valueName: "dir")) var rules = "/etc/protect"
    @Option(help: ArgumentHelp("The keys qube.", valueName: "name")) var keysQube = "core-keys"
    @Option(help: ArgumentHelp("Owner the stored file must have.", valueName: "uid:gid")) var owner = Owner(argument: "1000:1000")!

    var writer: PinWriter { PinWriter(rules: rules, keysQube: keysQube, owner: owner.user, group: owner.group) }
}

extension SplitPasswordTool {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Server side (in core-keys, run by qrexec): print the caller's password for a token.",
            discussion: """
                The caller is QREXEC_REMOTE_DOMAIN; the token is QREXEC_SERVICE_ARGUMENT, else TOKEN, else the first \
                line of stdin. The store must be owned by --owner, have no group or other access and match its pin.
                """)

        @Argument(help: "The token, when not given as the service argument.") var token: String?
        @Option(help: ArgumentHelp("The folder holding password-<caller>.", valueName: "dir")) var store = "/home/user"
        @Option(help: ArgumentHelp("The folder holding the pins password-<caller>.", valueName: "dir"))
        var pins = "/etc/protect/checksum.core-keys/home/user"
        @Option(help: ArgumentHelp("The uid that must own the store (default: this process's).", valueName: "uid")) var owner: UInt32?
        @OptionGroup var service: ServiceOptions

        func run() throws {
            let server = SplitPasswordServer(store: store, pins: pins, owner: owner ?? geteuid(), context: service.context)
            try Tool.serve { caller, argument throws(SplitError) in try server.serve(caller: caller, argument: argument) } argument: { token }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get", abstract: "Client side: fetch a password from the keys qube.",
            discussion: "When the keys qube gives none, dom0 asks the desktop user for it (liteqube.SplitPassword+TOKEN to dom0) and offers to save it.")

        @Argument(help: "The token.") var token: String
        @Flag(help: "Do not ask dom0 when the keys qube gives no password.") var noAskDom0 = false
        @OptionGroup var client: ClientOptions

        func run() throws {
            try Tool.fetch(
                client, "liteqube.SplitPassword", token, what: "token", limit: PasswordStore.maxPassword, output: nil,
                fallback: noAskDom0 ? nil : "dom0")
        }
    }

    struct Save: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "save",
            abstract: "In core-keys, for dom0 only: store a password read from stdin as three lines: qube, token, password.",
            discussion: "Replaces password-<qube> atomically (newest token first) and prints its pin: sha256 and sha512 lines.")

        @Option(help: ArgumentHelp("The folder holding password-<qube>.", valueName: "dir")) var store = "/home/user"
        @Option(help: ArgumentHelp("Owner of the store file.", valueName: "uid:gid")) var owner = Owner(argument: "1000:1000")!

        func run() throws {
            let saver = PasswordSaver(store: store, owner: owner.user, group: owner.group)
            try Tool.refusing { () throws(SplitError) in Tool.output(try saver.save(Tool.input(lines: .max)).fileBytes) }
        }
    }

    struct Pin: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pin",
            abstract: "In the template, for dom0 only: record a store's pin read from stdin as three lines: qube, sha256, sha512.",
            discussion: "Writes <rules>/checksum.<keys-qube>/home/user/password-<qube> and prints its path.")

        @OptionGroup var pins: PinOptions

        func run() throws {
            let writer = pins.writer
            try Tool.refusing { () throws(SplitError) in Tool.output(Array((try writer.write(Tool.input(lines: 3)) + "\n").utf8)) }
        }
    }
}
