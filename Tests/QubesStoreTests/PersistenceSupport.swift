import Glibc
import QubesStore
import Synchronization
import SystemLayer
import Testing

/// What PersistenceTests needs besides the code under test: temporary folders, direct file access
/// with Glibc, lock probes, threads, and a file system that fails on purpose.

let ofdSetLock: Int32 = 37  // F_OFD_SETLK
let ofdSetLockWait: Int32 = 38  // F_OFD_SETLKW

/// A fresh directory under /tmp, removed (with its files) after `body`.
func withTempDirectory(_ body: (String) throws -> Void) throws {
    var template = Array("/tmp/lq-persistence-XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw StoreError(.osError, "mkdtemp failed") }
    let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer {
        for name in listDirectory(directory) { _ = unlink(directory + "/" + name) }
        _ = rmdir(directory)
    }
    try body(directory)
}

func listDirectory(_ directory: String) -> [String] {
    guard let dir = opendir(directory) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Writes a file directly with Glibc, independent of the code under test.
func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0)
    let bytes = Array(text.utf8)
    precondition(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
    close(fd)
}

func contents(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        result += chunk[0..<n]
    }
    return String(decoding: result, as: UTF8.self)
}

func permissions(_ path: String) -> UInt32 {
    var st = stat()
    precondition(stat(path, &st) == 0)
    return UInt32(st.st_mode) & 0o7777
}

/// Takes a whole-file write lock on `fd` with the given fcntl command; true if it was granted.
func writeLock(_ fd: Int32, command: Int32) -> Bool {
    var request = flock()
    request.l_type = Int16(F_WRLCK)
    request.l_whence = Int16(SEEK_SET)
    return fcntl(fd, command, &request) == 0
}

/// True if nobody holds a lock on `path` (probed without blocking).
func isUnlocked(_ path: String) -> Bool {
    let fd = open(path, O_RDWR)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return writeLock(fd, command: ofdSetLock)
}

/// A value shared with other threads.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func update(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}

final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// A plain pthread, so blocking file locks never tie up the Swift concurrency pool.
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { context in
            Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
    precondition(rc == 0)
    return thread
}

/// Wraps `SystemFileSystem` and fails the `failAt`-th call of one kind of step.
final class FailingFileSystem: FileSystem {
    enum Step: String, Sendable, CaseIterable, CustomStringConvertible {
        case lock, attributes, openDirectory, openTemp, setAttributes, write, fsyncTemp, fstatTemp, rename,
            fsyncDirectory
        var description: String { rawValue }
    }

    private struct State {
        var calls: [Step: Int] = [:]
        var directoryFDs: Set<Int32> = []
        var tempFDs: Set<Int32> = []
    }

    let base = SystemFileSystem()
    let step: Step
    let failAt: Int
    private let state = Mutex(State())

    init(failing step: Step, at call: Int = 1) {
        self.step = step
        self.failAt = call
    }

    /// Counts a call of `kind`; throws if it is the one to fail.
    private func check(_ kind: Step) throws {
        let count = state.withLock { state in
            state.calls[kind, default: 0] += 1
            return state.calls[kind]!
        }
        if kind == step && count == failAt {
            throw StoreError(.osError, "injected failure at \(kind) #\(count)")
        }
    }

    func open(_ path: String, flags: Int32, mode: UInt32) throws -> Int32 {
        let isDirectory = flags & O_DIRECTORY != 0
        let isTemp = flags & O_CREAT != 0 && flags & O_WRONLY != 0
        if isDirectory { try check(.openDirectory) }
        if isTemp { try check(.openTemp) }
        let fd = try base.open(path, flags: flags, mode: mode)
        state.withLock { state in
            if isDirectory { state.directoryFDs.insert(fd) }
            if isTemp { state.tempFDs.insert(fd) }
        }
        return fd
    }

    func close(_ fd: Int32) {
        state.withLock { state in
            state.directoryFDs.remove(fd)
            state.tempFDs.remove(fd)
        }
        base.close(fd)
    }

    func fstat(_ fd: Int32) throws -> FileStamp {
        if state.withLock({ $0.tempFDs.contains(fd) }) { try check(.fstatTemp) }
        return try base.fstat(fd)
    }

    func stat(_ path: String) throws -> FileStamp { try base.stat(path) }
    func read(_ fd: Int32) throws -> [UInt8] { try base.read(fd) }

    func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        do {
            try check(.write)
        } catch {
            try base.write(fd, Array(bytes.prefix(bytes.count / 2)))  // a partial write, then the failure
            throw error
        }
        try base.write(fd, bytes)
    }

    func fsync(_ fd: Int32) throws {
        try check(state.withLock { $0.directoryFDs.contains(fd) } ? .fsyncDirectory : .fsyncTemp)
        try base.fsync(fd)
    }

    func rename(_ from: String, _ to: String) throws {
        try check(.rename)
        try base.rename(from, to)
    }

    func unlink(_ path: String) throws { try base.unlink(path) }

    func lock(_ fd: Int32, exclusive: Bool) throws {
        try check(.lock)
        try base.lock(fd, exclusive: exclusive)
    }

    func attributes(_ fd: Int32) throws -> FileAttributes {
        try check(.attributes)
        return try base.attributes(fd)
    }

    func setAttributes(_ fd: Int32, _ attributes: FileAttributes) throws {
        try check(.setAttributes)
        try base.setAttributes(fd, attributes)
    }
}
