import ArgumentParser
import BootProtect
import Glibc
import SplitServices

/// `lq-splitfile`: Liteqube's SplitFile, both sides.
public struct SplitFileTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-splitfile",
        abstract: "Hand a qube its own files from the offline keys qube over qrexec (liteqube.SplitFile).",
        discussion: "Exit status: 0 served, 1 refused, 2 usage.",
        subcommands: [Serve.self, Get.self])

    public init() {}
}

extension SplitFileTool {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Server side (in core-keys, run by qrexec): print <store>/<caller>/<name>.",
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
            abstract: "Client side: fetch one of this qube's files from the keys qube.")

        @Argument(help: "The file name.") var name: String
        @Option(help: ArgumentHelp("Write the file here (created, mode 0600) instead of to stdout.", valueName: "file")) var output: String?
        @OptionGroup var client: ClientOptions

        func run() throws {
            try Tool.fetch(client, "liteqube.SplitFile", name, what: "file name", limit: 64 << 20, output: output)
        }
    }
}
