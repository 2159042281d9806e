import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import TestSupport
import Testing

/// Kills an `lq` operation with SIGKILL at random moments and checks what it leaves (docs/crash-safety.md):
/// every file is its old or its new content, running the operation again ends where an uninterrupted run
/// ends, and no temp file is left.
struct KillCampaign {
    /// The scenario's name, which names its folder.
    var name: String
    /// Makes the folder the operation starts from (run once; each run starts from a copy).
    var prepare: (ScratchFolder) throws -> Void
    /// The `lq` arguments for the folder.
    var arguments: (ScratchFolder) -> [String]
    /// Compare files as sets of lines: merge numbers shard qubes at random, which orders the domains.
    var orderFree = false
    /// Files an operation of many steps saves after each (apply's store and journal): killed, they may
    /// hold any complete version (well-formed XML or JSON), not only the old or the new one.
    var stepped: Set<String> = []
    /// What a run again says (status 1) when the killed run had done everything: detach of nothing attached.
    var done: String?

    /// How many runs a campaign makes: LQ_KILL_RUNS, else `defaultRuns`.
    static var runs: Int { ProcessInfo.processInfo.environment["LQ_KILL_RUNS"].flatMap(Int.init) ?? defaultRuns }
    static let defaultRuns = 24

    /// What a campaign saw: the runs killed before the end, and those that finished first.
    struct Outcome {
        var killed = 0
        var finished = 0
        var tempFilesSeen = 0
    }

    /// Runs the campaign; each broken property is recorded as a test issue naming the run and the delay.
    @discardableResult
    func run(runs: Int = KillCampaign.runs) throws -> Outcome {
        let scratch = try ScratchFolder(name)
        defer { scratch.removeAll() }
        try prepare(scratch)
        try scratch.keepPristine()
        let old = try scratch.snapshot(orderFree: orderFree)
        let started = Date()
        let reference = try ProgramResult.run(LQ.binary, arguments(scratch))
        let duration = Date().timeIntervalSince(started)
        #expect(reference.status == 0, "\(name): the uninterrupted run failed: \(reference.stderr)")
        let new = try scratch.snapshot(orderFree: orderFree)
        #expect(old != new, "\(name): the operation changes nothing")
        var outcome = Outcome()
        for run in 0..<runs {
            try scratch.restorePristine()
            // Half the runs anywhere, half near the end, where the writes are.
            let delay = run.isMultiple(of: 2) ? Double.random(in: 0...duration) : Double.random(in: (0.7 * duration)...(1.1 * duration))
            let process = Process()
            process.executableURL = LQ.binary
            process.arguments = arguments(scratch)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let killed = process.terminationReason == .uncaughtSignal
            if killed { outcome.killed += 1 } else { outcome.finished += 1 }
            let context = "\(name) run \(run) killed after \(Int(delay * 1000)) ms"
            let state = try scratch.snapshot(orderFree: orderFree)
            for path in Set(state.keys).union(old.keys).union(new.keys).sorted() where !ScratchFolder.isTemp(path) {
                if stepped.contains(path), let content = state[path] {
                    #expect(ScratchFolder.isComplete(path, content, from: [old[path], new[path]]), "\(context): \(path) is torn")
                } else {
                    #expect(state[path] == old[path] || state[path] == new[path], "\(context): \(path) is neither old nor new")
                }
            }
            outcome.tempFilesSeen += state.keys.filter(ScratchFolder.isTemp).count
            let again = try ProgramResult.run(LQ.binary, arguments(scratch))
            let finished = done.map { again.status == 1 && again.stderr.contains($0) } ?? false
            #expect(again.status == 0 || finished, "\(context): running it again failed: \(again.stderr)")
            let end = try scratch.snapshot(orderFree: orderFree)
            let differing = Set(end.keys).union(new.keys).filter { end[$0] != new[$0] }.sorted()
            #expect(differing.isEmpty, "\(context): run again, it ends elsewhere: \(differing.map { "\($0): \(Self.difference(end[$0], new[$0]))" })")
        }
        // The campaign's figures, for scripts/kill-campaign and docs/crash-safety.md.
        print("kill: \(name): \(runs) runs, \(outcome.killed) killed before the end, \(outcome.finished) finished first, "
            + "\(outcome.tempFilesSeen) temp files seen after a kill, uninterrupted \(Int(duration * 1000)) ms")
        return outcome
    }
}

extension KillCampaign {
    /// The first line where `actual` and `expected` differ, with its neighbours.
    static func difference(_ actual: String?, _ expected: String?) -> String {
        let a = (actual ?? "<absent>").split(separator: "\n", omittingEmptySubsequences: false)
        let b = (expected ?? "<absent>").split(separator: "\n", omittingEmptySubsequences: false)
        let line = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        let shown = { (lines: [Substring]) in lines[max(0, line - 2)..<min(lines.count, line + 3)].joined(separator: "⏎") }
        return "line \(line + 1): got '\(shown(a))', uninterrupted '\(shown(b))'"
    }
}

/// A folder at a fixed path for the runs of one campaign (file contents may name it), and a pristine copy.
struct ScratchFolder {
    let root: String
    var path: String { root + "/work" }
    var pristine: String { root + "/pristine" }

    init(_ name: String) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("lq-kill-\(name)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `relative` in the work folder.
    func callAsFunction(_ relative: String) -> String { path + "/" + relative }

    func removeAll() { try? FileManager.default.removeItem(atPath: root) }

    func keepPristine() throws { try FileManager.default.copyItem(atPath: path, toPath: pristine) }

    func restorePristine() throws {
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: pristine, toPath: path)
    }

    /// Whether `path` names an atomic replace's temp file (`.<name>.tmp-<pid>-<counter>`).
    static func isTemp(_ path: String) -> Bool {
        let name = path.split(separator: "/").last ?? ""
        return name.hasPrefix(".") && name.contains(".tmp-")
    }

    /// Every entry of the work folder: a file's content (uuids and qids masked, with `orderFree` its
    /// sorted lines), a folder as `folder`, a symlink as its target.
    func snapshot(orderFree: Bool) throws -> [String: String] {
        var entries: [String: String] = [:]
        for relative in try FileManager.default.subpathsOfDirectory(atPath: path) {
            let full = path + "/" + relative
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            switch attributes[.type] as? FileAttributeType {
            case .typeDirectory?: entries[relative] = "folder"
            case .typeSymbolicLink?: entries[relative] = "-> " + (try FileManager.default.destinationOfSymbolicLink(atPath: full))
            default: entries[relative] = Self.masked(String(decoding: try Data(contentsOf: URL(fileURLWithPath: full)), as: UTF8.self), orderFree)
            }
        }
        return entries
    }

    /// Whether `content` is a whole XML or JSON document (by the name's extension), else whole lines each
    /// found in one of `versions` (a list saved a line more or less at each step).
    static func isComplete(_ path: String, _ content: String, from versions: [String?]) -> Bool {
        if path.hasSuffix(".xml") { return XMLParser(data: Data(content.utf8)).parse() }
        if path.hasSuffix(".json") { return (try? JSONSerialization.jsonObject(with: Data(content.utf8))) != nil }
        let known = Set(versions.compactMap { $0 }.flatMap { $0.split(separator: "\n") })
        return content.hasSuffix("\n") && content.split(separator: "\n").allSatisfy(known.contains)
    }

    /// What each run draws at random: uuids of new qubes, the dispid qubesd draws at every save.
    private static let random = try! NSRegularExpression(
        pattern: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<=<property name=\"dispid\">)[0-9]+")
    private static let qid = try! NSRegularExpression(pattern: "(domain-|\"qid\">)[0-9]+")

    static func masked(_ text: String, _ orderFree: Bool) -> String {
        var text = random.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "RANDOM")
        guard orderFree else { return text }
        text = qid.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1N")
        return text.split(separator: "\n", omittingEmptySubsequences: false).sorted().joined(separator: "\n")
    }
}
