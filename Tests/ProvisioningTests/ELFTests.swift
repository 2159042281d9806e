import Foundation
import Testing

@testable import Provisioning

/// The ELF reader that tells a static lq-inqube from one that needs the Swift runtime.
@Suite struct ELFTests {
    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func aSystemProgramNeedsTheCLibrary() throws {
        let needed = try #require(ELF.neededLibraries(try Self.bytes("/bin/sh")))
        #expect(needed.contains("libc.so.6"), "\(needed)")
    }

    @Test func aDebugBuildNeedsTheSwiftRuntime() throws {
        let test = try #require(Bundle.main.executableURL?.path)
        let needed = try #require(ELF.neededLibraries(try Self.bytes(test)))
        #expect(needed.contains { $0.hasPrefix("libswiftCore") }, "\(needed)")
    }

    @Test func otherFilesAreNotELF() {
        #expect(ELF.neededLibraries(Array("#!/bin/sh\necho\n".utf8)) == nil)
        #expect(ELF.neededLibraries([0x7f, 0x45, 0x4c, 0x46]) == nil)
        var thirtyTwoBit = [UInt8](repeating: 0, count: 64)
        thirtyTwoBit[0..<6] = [0x7f, 0x45, 0x4c, 0x46, 1, 1]
        #expect(ELF.neededLibraries(thirtyTwoBit) == nil)
    }

    /// Cut anywhere, a program gives no libraries it does not have: nil, or names from the whole program.
    @Test func truncatedProgramsGiveNothingMadeUp() throws {
        let whole = try Self.bytes("/bin/sh")
        let all = Set(try #require(ELF.neededLibraries(whole)))
        for length in stride(from: 0, to: whole.count, by: max(1, whole.count / 300)) {
            if let found = ELF.neededLibraries(Array(whole[..<length])) { #expect(Set(found).isSubset(of: all), "\(length) bytes: \(found)") }
        }
    }
}
