import SystemLayer

/// A test's file system that passes to `base` every call it does not implement itself (to inject a
/// failure or watch one step).
public protocol ForwardingFileSystem: FileSystem {
    var base: SystemFileSystem { get }
}

extension ForwardingFileSystem {
    public func open(_ path: String, flags: Int32, mode: UInt32) throws -> Int32 { try base.open(path, flags: flags, mode: mode) }
    public func close(_ fd: Int32) { base.close(fd) }
    public func fstat(_ fd: Int32) throws -> FileStamp { try base.fstat(fd) }
    public func stat(_ path: String) throws -> FileStamp { try base.stat(path) }
    public func read(_ fd: Int32) throws -> [UInt8] { try base.read(fd) }
    public func write(_ fd: Int32, _ bytes: [UInt8]) throws { try base.write(fd, bytes) }
    public func fsync(_ fd: Int32) throws { try base.fsync(fd) }
    public func rename(_ from: String, _ to: String) throws { try base.rename(from, to) }
    public func unlink(_ path: String) throws { try base.unlink(path) }
    public func lock(_ fd: Int32, exclusive: Bool) throws { try base.lock(fd, exclusive: exclusive) }
    public func attributes(_ fd: Int32) throws -> FileAttributes { try base.attributes(fd) }
    public func setAttributes(_ fd: Int32, _ attributes: FileAttributes) throws { try base.setAttributes(fd, attributes) }
}
