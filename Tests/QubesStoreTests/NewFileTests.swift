import Glibc
import QubesStore
import Synchronization
import SystemLayer
import TestSupport
import Testing

@Suite struct NewFileTests {
    /// A new file appears whole: while its temp file is written nothing is at its path, so a writer killed
    /// then leaves no empty file (docs/crash-safety.md).
    @Test func aNewFileIsNotThereUntilItIsWhole() throws {
        var template = Array("/tmp/lq-new-file-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", errno) }
        let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let files = SystemFileSystem()
        defer { try? files.removeTree(directory) }
        let path = directory + "/domains.xml.prev"
        let observing = ObservingFileSystem { (try? SystemFileSystem().info(of: path)) != nil }
        try StoreFile(path: path, fileSystem: observing).replace(with: Array("<whole/>".utf8), expecting: nil)
        #expect(observing.seen == [false])
        #expect(try files.contents(of: path) == Array("<whole/>".utf8))
        #expect(try files.info(of: path)?.permissions == 0o660)
        #expect(try files.entries(of: directory) == [Array("domains.xml.prev".utf8)])
    }
}

/// `SystemFileSystem`, noting what `observe` says at each write.
final class ObservingFileSystem: ForwardingFileSystem {
    let base = SystemFileSystem()
    let observe: @Sendable () -> Bool
    private let state = Mutex([Bool]())
    var seen: [Bool] { state.withLock { $0 } }

    init(_ observe: @escaping @Sendable () -> Bool) { self.observe = observe }

    func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        let value = observe()
        state.withLock { $0.append(value) }
        try base.write(fd, bytes)
    }
}
