import Glibc
import SystemLayer
import Testing

/// A program `HostSystem.run` starts gets its standard input and output, standard error and the
/// descriptors asked for, and no other (docs/system-layer.md, "Processes").
@Suite struct ProcessDescriptorTests {
    /// The descriptors of `numbers` the child has open, as it reports them.
    static func open(in numbers: [Int32], passing descriptors: [Int32: Int32] = [:]) throws -> String {
        let list = numbers.map(String.init).joined(separator: " ")
        let script = "for fd in \(list); do [ -e /proc/$$/fd/$fd ] && printf '%s ' $fd; done; exit 0"
        let result = try HostSystem().run("/bin/sh", ["-c", script], input: [], outputLimit: 4096, passing: descriptors)
        #expect(result.status == 0)
        return String(decoding: result.output, as: UTF8.self)
    }

    /// Descriptors opened without O_CLOEXEC, as a library or another thread may leave them.
    static func strays(_ count: Int) -> [Int32] {
        (0..<count).map { _ in Glibc.open("/dev/null", O_RDONLY) }
    }

    @Test func aDescriptorOpenedWithoutCloseOnExecDoesNotReachTheChild() throws {
        let strays = Self.strays(3)
        defer { strays.forEach { _ = Glibc.close($0) } }
        #expect(strays.allSatisfy { $0 > 2 })
        #expect(try Self.open(in: [0, 1, 2] + strays) == "0 1 2 ")
    }

    /// The numbers asked for reach the child; strays below and above them do not.
    @Test func onlyThePassedDescriptorsAreAddedToTheStandardOnes() throws {
        let strays = Self.strays(4)
        defer { strays.forEach { _ = Glibc.close($0) } }
        let high = strays.max()! + 3
        #expect(try Self.open(in: Set([3, 4, 5, high] + strays).sorted(), passing: [4: strays[0], high: strays[1]]) == "4 \(high) ")
    }
}
