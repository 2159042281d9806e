import Foundation
import TestSupport
import Testing

/// Two runs of `lq` on one journal and store (docs/crash-safety.md, "Concurrency").
@Suite struct ConcurrencyTests {
    /// `lq` started with its standard error kept (its output is dropped).
    static func start(_ arguments: [String]) throws -> (process: Process, stderr: Pipe) {
        let process = Process()
        process.executableURL = LQ.binary
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        return (process, stderr)
    }

    /// A second apply started while one runs says it waits, then finds nothing to do: the end state is
    /// an uninterrupted run's, the journal has no entry twice.
    @Test func aSecondApplyWaitsForTheFirstAndLosesNoUpdate() throws {
        let scratch = try ScratchFolder("concurrent-apply")
        defer { scratch.removeAll() }
        try KillTests.provisioning(scratch)
        try scratch.keepPristine()
        let arguments = KillTests.provisioningArguments("apply")(scratch)
        #expect(try ProgramResult.run(LQ.binary, arguments).status == 0)
        let alone = try scratch.snapshot(orderFree: false)
        try scratch.restorePristine()

        let first = try Self.start(arguments)
        Thread.sleep(forTimeInterval: 0.3)
        let second = try Self.start(arguments)
        let messages = [first, second].map { run in
            let text = String(decoding: run.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            run.process.waitUntilExit()
            return (run.process.terminationStatus, text)
        }
        #expect(messages.allSatisfy { $0.0 == 0 }, "\(messages)")
        #expect(messages[1].1.contains("waiting for another apply or destroy on this journal"), "\(messages)")
        let together = try scratch.snapshot(orderFree: false)
        let differing = Set(together.keys).union(alone.keys).filter { together[$0] != alone[$0] }.sorted()
        #expect(differing.isEmpty, "\(differing.map { "\($0): \(KillCampaign.difference(together[$0], alone[$0]))" })")
    }
}
