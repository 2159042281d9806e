import Foundation

// What the test targets share: where fixtures are, temporary copies of them, and running the built
// programs as users and other tools do.

/// A folder of fixtures: the paths, bytes and text of the files in it.
public struct FixtureFolder: Sendable {
    public let root: URL

    public init(_ root: URL) { self.root = root }

    /// A test target's bundled `Fixtures` folder (pass that target's `Bundle.module`).
    public init(bundle: Bundle) { self.init(bundle.resourceURL!.appendingPathComponent("Fixtures")) }

    /// The qubes.xml files the reference qubesd produced (docs/qubes-xml.md): the store, backend and
    /// command tests all read them.
    public static let stores = FixtureFolder(Bundle.module.resourceURL!.appendingPathComponent("Fixtures/qubes-xml"))

    public func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    public func path(_ relative: String) -> String { url(relative).path }

    public func bytes(_ relative: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(relative))) }

    public func text(_ relative: String) throws -> String { String(decoding: try bytes(relative), as: UTF8.self) }

    /// A copy of the fixture in a fresh temporary folder, named `name` there.
    public func copy(_ relative: String, as name: String = "qubes.xml") throws -> URL {
        let target = try Scratch.folder().appendingPathComponent(name)
        try FileManager.default.copyItem(at: url(relative), to: target)
        return target
    }
}

/// Fresh temporary folders.
public enum Scratch {
    /// A new empty folder under the temporary directory.
    public static func folder(_ prefix: String = "lq-test") throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}

/// The repository and the programs it builds.
public enum Repository {
    /// The repository's root folder.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A built program (`lq`, `lq-protect`, …), beside the test bundle.
    public static func product(_ name: String) -> URL { Bundle.main.bundleURL.appendingPathComponent(name) }
}

/// A program's exit status and what it printed.
public struct ProgramResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        (self.status, self.stdout, self.stderr) = (status, stdout, stderr)
    }

    /// Runs `program` with `arguments`, `environment` (the test's own when `nil`) and `input` on stdin.
    public static func run(_ program: URL, _ arguments: [String], environment: [String: String]? = nil, input: String = "") throws -> ProgramResult {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        if let environment { process.environment = environment }
        let stdin = Pipe()
        let out = Pipe()
        let err = Pipe()
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProgramResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}
