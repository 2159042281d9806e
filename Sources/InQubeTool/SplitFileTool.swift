import ArgumentParser
import Glibc
import SplitServices

/// `lq-splitfile`: Liteqube's SplitFile, both sides.
public struct SplitFileTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-splitfile",
        abstract: "Hand a qube its own files from the offline keys qube over qrexec (liteqube.SplitFile).",
        discussion: "Exit status: 0 served, 1 refused, 2 usage.",
        subcommands: [Serve.self, Get.self, Save.self, Pin.self])

    public init() {}
}

extension SplitFileTool {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Server side (in core-keys, run by qrexec): print <store>/<caller>/<name>.",
            discussion: """
                The caller is QREXEC_REMOTE_DOMAIN. The name is QREXEC_SERVICE_ARGUMENT (liteqube.SplitFile+NAME), \
                else NAME, else the first line of stdin: one path component of A-Z a-z 0-9 _ . + -, at most 64 bytes, \
                not starting with '.' or '-'. Symlinks, special files, hard links and files over --max-size are refused.
                """)

        @Argument(help: "The file name, when not given as the service argument.") var name: String?
        @Option(help: ArgumentHelp("The folder holding one folder per caller.", valueName: "dir")) var store = "/home/user"
        @Option(help: ArgumentHelp("The largest file served, in bytes.", valueName: "bytes")) var maxSize = 16 << 20
        @OptionGroup var service: ServiceOptions

        func run() throws {
            let server = SplitFileServer(store: store, maxSize: maxSize, context: service.context)
            try Tool.serve { caller, argument throws(SplitError) in try server.serve(caller: caller, argument: argument) } argument: { name }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get", abstract: "Client side: fetch one of this qube's files from the keys qube.")

        @Argument(help: "The file name.") var name: String
        @Option(help: ArgumentHelp("Write the file here (created, mode 0600) instead of to stdout.", valueName: "file")) var output: String?
        @OptionGroup var client: ClientOptions

        func run() throws {
            try Tool.fetch(client, "liteqube.SplitFile", name, what: "file name", limit: 64 << 20, output: output)
        }
    }

    struct Save: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "save", abstract: "In core-keys, for dom0 only: store a file read from stdin after two lines: qube, file name.",
            discussion: "Replaces <store>[/<subfolder>]/<qube>/<name> atomically (folders 0700, file 0600) and prints its pin: sha256 and sha512 lines.")

        @Option(help: ArgumentHelp("The folder holding one folder per qube.", valueName: "dir")) var store = "/home/user"
        @OptionGroup var subfolder: SubfolderOption
        @Option(help: ArgumentHelp("Owner of the folder and file.", valueName: "uid:gid")) var owner = Owner(argument: "1000:1000")!
        @Option(help: ArgumentHelp("The largest file stored, in bytes.", valueName: "bytes")) var maxSize = 16 << 20

        func run() throws {
            let saver = FileSaver(store: store, subfolder: subfolder.subfolder, owner: owner.user, group: owner.group, maxSize: maxSize)
            try Tool.refusing { () throws(SplitError) in
                Tool.output(try saver.save(Tool.input(lines: .max, limit: maxSize + 256)).fileBytes)
            }
        }
    }

    struct Pin: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pin",
            abstract: "In the template, for dom0 only: record a file's pin read from stdin as four lines: qube, file name, sha256, sha512.",
            discussion: "Writes <rules>/checksum.<keys-qube>/home/user[/<subfolder>]/<qube>/<name> and prints its path.")

        @OptionGroup var pins: PinOptions
        @OptionGroup var subfolder: SubfolderOption

        func run() throws {
            var writer = pins.writer
            writer.subfolder = subfolder.subfolder
            try Tool.refusing { () throws(SplitError) in Tool.output(Array((try writer.writeFile(Tool.input(lines: 4)) + "\n").utf8)) }
        }
    }
}

/// `--subfolder`: the folder between the store and the qube's folder (`.ssh` for the split SSH keys).
struct SubfolderOption: ParsableArguments {
    @Option(help: ArgumentHelp("A folder between the store and the qube's folder (.ssh: split SSH keys).", valueName: "name"))
    var subfolder: String?

    func validate() throws {
        guard let subfolder else { return }
        guard !subfolder.isEmpty, subfolder != ".", subfolder != "..", !subfolder.contains("/") else {
            throw ValidationError("--subfolder must be one folder name, not '\(subfolder)'")
        }
    }
}
