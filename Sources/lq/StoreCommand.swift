import ArgumentParser
import InQubeTool
import LQCommon
import QubesStore

/// `lq store …`: read, check and rewrite qubes.xml.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Read, check and rewrite a qubes.xml file as qubesd does.",
        subcommands: [Dump.self, Check.self, Format.self]
    )
}

extension StoreCommand {
    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump", abstract: "Print the canonical JSON dump of a qubes.xml file.",
            discussion: "The output is byte for byte what the reference dump of qubesd's loaded state gives.")

        @Argument(help: "The qubes.xml file.") var file: String
        @Flag(help: "Add the effective value of every property of every qube (offline host values).")
        var effective = false

        func run() throws {
            let loaded = try StoreInput.load(file)
            Terminal.write(StoreDump.json(loaded.store, effective: effective).canonicalBytes())
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check", abstract: "Check a qubes.xml file: qubesd's load outcome, plus what qubesd silently accepts or changes.",
            discussion: "Exit status: 0 clean (warnings allowed), 1 when qubesd would refuse the file (or any warning with --strict).")

        @Argument(help: "The qubes.xml file.") var file: String
        @Flag(help: "Treat warnings as errors.") var strict = false
        @Flag(help: "Print {\"errors\": [...], \"warnings\": [...]} as JSON.") var json = false

        func run() throws {
            let bytes = try StoreInput.read(file)
            let loaded = Result { try Store.load(xml: bytes) }
            var report: CheckReport
            switch loaded {
            case .success(let document): report = StoreCheck.check(document, bytes)
            case .failure(let error): report = StoreCheck.refusal(error)
            }
            if strict {
                report.errors += report.warnings
                report.warnings = []
            }
            if json {
                let entries: ([StoreFinding]) -> JSONValue = { findings in
                    .array(findings.map(\.json))
                }
                Terminal.write(JSONValue.object(["errors": entries(report.errors), "warnings": entries(report.warnings)]).canonicalBytes())
            } else {
                for error in report.errors { Terminal.error("\(file): error: \(error)") }
                for warning in report.warnings { Terminal.error("\(file): warning: \(warning)") }
                if report.errors.isEmpty, let loaded = try? loaded.get() {
                    Terminal.write(StoreSummary.text(file, loaded.store, warnings: report.warnings.count))
                }
            }
            Tool.keepUntilExit((bytes, loaded, report))
            if !report.errors.isEmpty { throw ExitCode(1) }
        }
    }

    struct Format: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fmt",
            abstract: "Rewrite a qubes.xml file in qubesd's canonical form.",
            discussion: "In place by default: atomically, under the same lock qubesd takes.")

        @Argument(help: "The qubes.xml file.") var file: String
        @Option(name: .shortAndLong, help: "Write to this file instead of rewriting FILE.") var output: String?

        func run() throws {
            do {
                if let output {
                    let bytes = try XMLWriter.write(try StoreInput.load(file).store)
                    try StoreFile(path: output).replace(with: bytes, expecting: nil)
                } else {
                    try StoreFile(path: file).modify { bytes, _ in
                        try XMLWriter.write(try Store.load(xml: bytes).store)
                    }
                }
            } catch let error as StoreError {
                throw StoreInput.fail(error.inFile(file))
            }
        }
    }
}

extension StoreFinding {
    /// `{"qube", "field", "value", "message"}`.
    var json: JSONValue {
        .object(["qube": qube.map(JSONValue.string) ?? .null, "field": field.map(JSONValue.string) ?? .null,
                 "value": value.map(JSONValue.string) ?? .null, "message": .string(message)])
    }
}

/// Reading a store named on the command line, with errors that name the file.
enum StoreInput {
    static func read(_ path: String) throws -> [UInt8] {
        do {
            return try StoreFile(path: path).read().bytes
        } catch let error as StoreError {
            throw fail(error.inFile(path))
        }
    }

    static func load(_ path: String) throws -> LoadedStore {
        do {
            return try Store.load(xml: try read(path))
        } catch let error as StoreError {
            throw fail(error.inFile(path))
        }
    }

    static func fail(_ error: StoreError) -> CommandFailure { CommandFailure(error.description) }
}

/// A short human summary of a store.
enum StoreSummary {
    static func text(_ file: String, _ store: Store, warnings: Int) -> String {
        var perClass: [VMClass: Int] = [:]
        for domain in store.unorderedDomains { perClass[domain.vmClass, default: 0] += 1 }
        let classes = VMClass.allCases.compactMap { vmClass in perClass[vmClass].map { "\($0) \(vmClass.rawValue)" } }
        var lines = ["\(file): loads as qubesd loads it; \(warnings) warning\(warnings == 1 ? "" : "s")"]
        lines.append("  qubes:  \(store.count) (\(classes.joined(separator: ", ")))")
        lines.append("  labels: \(store.labels.count), pools: \(store.pools.keys.joined(separator: ", "))")
        let globals = ["default_template", "default_netvm", "default_dispvm", "updatevm", "clockvm"].map {
            "\($0)=\(store.globalReference($0) ?? store.globalProperties[$0] ?? "none")"
        }
        lines.append("  " + globals.joined(separator: " "))
        return lines.joined(separator: "\n") + "\n"
    }
}
