import Glibc

// The values the system layer's calls take and return (docs/system-layer.md).

/// One path component (a file name) as raw bytes: any byte but `/` and NUL.
public typealias Name = [UInt8]

/// An open file descriptor.
public typealias Descriptor = Int32

/// A failed system call: its name, the errno, and for a call on a path the path (and a rename's target).
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    public var call: String
    public var code: Int32
    /// The path the call was made on, when it took one (calls relative to a descriptor leave it out).
    public var path: String?
    /// The second path of a call on two (a rename's destination).
    public var target: String?

    public init(_ call: String, _ code: Int32, path: String? = nil, target: String? = nil) {
        (self.call, self.code, self.path, self.target) = (call, code, path, target)
    }

    /// `<call>[ <path>[ -> <target>]]: <strerror> (errno N)`.
    public var description: String {
        let subject = (path.map { " " + $0 } ?? "") + (target.map { " -> " + $0 } ?? "")
        return "\(call)\(subject): \(reason) (errno \(code))"
    }

    /// What `strerror` says about the errno.
    public var reason: String { String(cString: strerror(code)) }

    /// The same failure, naming the path it was on.
    public func on(_ path: String) -> SystemError { SystemError(call, code, path: path, target: target) }

    /// `ENOENT`.
    public var isNotFound: Bool { code == ENOENT }
    /// `EEXIST`: an entry of that name is already there.
    public var isAlreadyThere: Bool { code == EEXIST }
    /// `ENOTEMPTY` (or `EEXIST`, which POSIX allows instead) from removing a folder that still holds entries.
    public var isNotEmpty: Bool { code == ENOTEMPTY || code == EEXIST }
    /// `ELOOP` or `ENOTDIR` from an `O_NOFOLLOW` open: a symlink or another type stands where a
    /// directory or file was expected.
    public var isUnexpectedType: Bool { code == ELOOP || code == ENOTDIR }
}

/// The type of a file system entry, from `st_mode` without following symlinks (`lstat`).
public enum FileType: String, Sendable, Hashable {
    case regular = "file"
    case directory
    case symlink
    case socket
    case fifo
    case characterDevice = "character device"
    case blockDevice = "block device"
    case unknown
}

/// What `fstatat(…, AT_SYMLINK_NOFOLLOW)` or `fstat` says about an entry.
public struct FileInfo: Sendable, Hashable {
    public var type: FileType
    /// `st_mode & 0o7777`.
    public var permissions: UInt32
    public var owner: UInt32
    public var group: UInt32
    public var size: Int64
    /// Hard links (`st_nlink`).
    public var links: UInt64
    public var device: UInt64
    public var inode: UInt64
    public var modificationSeconds: Int64
    public var modificationNanoseconds: Int64

    init(_ st: Glibc.stat) {
        let type: FileType
        switch st.st_mode & S_IFMT {
        case S_IFREG: type = .regular
        case S_IFDIR: type = .directory
        case S_IFLNK: type = .symlink
        case S_IFSOCK: type = .socket
        case S_IFIFO: type = .fifo
        case S_IFCHR: type = .characterDevice
        case S_IFBLK: type = .blockDevice
        default: type = .unknown
        }
        self.type = type
        (permissions, owner, group) = (UInt32(st.st_mode) & 0o7777, st.st_uid, st.st_gid)
        (size, links, device, inode) = (Int64(st.st_size), UInt64(st.st_nlink), UInt64(st.st_dev), UInt64(st.st_ino))
        (modificationSeconds, modificationNanoseconds) = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
    }

    /// Same inode on the same device: the entry was not swapped since it was looked at.
    public func isSameEntry(as other: FileInfo) -> Bool {
        device == other.device && inode == other.inode && type == other.type
    }
}

/// A finished child process.
public struct ProcessOutput: Sendable, Hashable {
    /// The exit status, or 128 + signal number.
    public var status: Int32
    public var output: [UInt8]
}

/// `FS_IMMUTABLE_FL` and `FS_NODUMP_FL` (chattr `i` and `d`).
public struct InodeFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let immutable = InodeFlags(rawValue: 0x10)
    public static let noDump = InodeFlags(rawValue: 0x40)
}

/// A name for messages: printable UTF-8 kept, control bytes, `\` and invalid UTF-8 as `\xNN`.
public func displayName(_ name: Name) -> String {
    var result = ""
    var index = 0
    while index < name.count {
        let byte = name[index]
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
            result.unicodeScalars.append(Unicode.Scalar(byte))
            index += 1
            continue
        }
        let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC2 ? 2 : 0
        if length > 0, index + length <= name.count {
            let slice = Array(name[index..<index + length])
            let text = String(decoding: slice, as: UTF8.self)
            if Array(text.utf8) == slice, text.unicodeScalars.allSatisfy({ $0.properties.generalCategory != .control && $0.properties.generalCategory != .format }) {
                result += text
                index += length
                continue
            }
        }
        let digits = Array("0123456789abcdef")
        result += "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
        index += 1
    }
    return result
}

/// A mode as four octal digits, `0644`.
public func octal(_ value: UInt32) -> String {
    let digits = String(value, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
