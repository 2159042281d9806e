import Glibc
import SystemLayer
import Testing

/// A fresh folder under /tmp; removed by `remove(_:)` in each test.
private func scratchFolder() throws -> String {
    var template = Array("/tmp/lq-system-layer-XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", errno) }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Removes `folder` and everything below it.
private func remove(_ folder: String) { try? SystemFileSystem().removeTree(folder) }

@Suite struct SystemLayerTests {
    let files = SystemFileSystem()

    @Test func replaceFileLeavesOnlyTheNewFileWithItsAttributes() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        let path = folder + "/file"
        let attributes = FileAttributes(permissions: 0o640, owner: getuid(), group: getgid())
        let stamp = try files.replaceFile(path, with: Array("one".utf8), attributes: attributes)
        #expect(try files.contents(of: path) == Array("one".utf8))
        #expect(try files.stat(path) == stamp)
        #expect(try files.info(of: path)?.permissions == 0o640)
        _ = try files.replaceFile(path, with: Array("two".utf8), attributes: attributes)
        #expect(try files.contents(of: path) == Array("two".utf8))
        #expect(try files.entries(of: folder) == [Array("file".utf8)])
    }

    /// A temp file a killed writer left is removed by the next replace of the same file; one of a live
    /// process (this one), one of another file and one that is no temp name stay.
    @Test func replaceFileRemovesTheTempFilesOfKilledWriters() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        let attributes = FileAttributes(permissions: 0o600, owner: getuid(), group: getgid())
        let gone = pid_t.max
        #expect(kill(gone, 0) != 0 && errno == ESRCH)
        let stale = ".file.tmp-\(gone)-3"
        let kept = [".file.tmp-\(getpid())-999", ".other.tmp-\(gone)-1", ".file.tmp-\(gone)-x", ".file.tmp-\(gone)"]
        for name in [stale] + kept { _ = try files.replaceFile(folder + "/" + name, with: [0], attributes: attributes) }
        _ = try files.replaceFile(folder + "/file", with: [1], attributes: attributes)
        let names = try files.entries(of: folder).map { String(decoding: $0, as: UTF8.self) }
        #expect(Set(names) == Set(kept + ["file"]))
    }

    @Test func replaceFileInAMissingFolderNamesTheFolder() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        let attributes = FileAttributes(permissions: 0o600, owner: getuid(), group: getgid())
        #expect(throws: SystemError("open", ENOENT, path: folder + "/missing")) {
            try files.replaceFile(folder + "/missing/file", with: [1], attributes: attributes)
        }
    }

    @Test func contentsStopsOneByteOverTheLimit() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        let attributes = FileAttributes(permissions: 0o600, owner: getuid(), group: getgid())
        _ = try files.replaceFile(folder + "/big", with: [UInt8](repeating: 7, count: 100), attributes: attributes)
        #expect(try files.contents(of: folder + "/big", limit: 10).count == 11)
        #expect(try files.contents(of: folder + "/big").count == 100)
    }

    @Test func makeDirectoriesCreatesEachMissingFolder() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        try files.makeDirectories(folder + "/a/b/c")
        try files.makeDirectories(folder + "/a/b/c")
        #expect(try files.info(of: folder + "/a/b/c")?.type == .directory)
        let attributes = FileAttributes(permissions: 0o600, owner: getuid(), group: getgid())
        _ = try files.replaceFile(folder + "/a/file", with: [], attributes: attributes)
        #expect(throws: SystemError("mkdirat", EEXIST, path: folder + "/a/file")) { try files.makeDirectories(folder + "/a/file/d") }
    }

    @Test func infoDoesNotFollowSymlinksUnlessAsked() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        #expect(symlink(folder, folder + "/link") == 0)
        #expect(try files.info(of: folder + "/link")?.type == .symlink)
        #expect(try files.info(of: folder + "/link", followSymlink: true)?.type == .directory)
        #expect(try files.info(of: folder + "/nothing") == nil)
    }

    @Test func removeTreeRemovesFoldersAndLinksButNotWhatTheyPointTo() throws {
        let folder = try scratchFolder()
        defer { remove(folder) }
        let outside = try scratchFolder()
        defer { remove(outside) }
        let attributes = FileAttributes(permissions: 0o600, owner: getuid(), group: getgid())
        _ = try files.replaceFile(outside + "/kept", with: [1], attributes: attributes)
        try files.makeDirectories(folder + "/tree/a/b")
        _ = try files.replaceFile(folder + "/tree/a/b/file", with: [2], attributes: attributes)
        #expect(symlink(outside, folder + "/tree/link") == 0)
        try files.removeTree(folder + "/tree")
        try files.removeTree(folder + "/tree")
        #expect(try files.entries(of: folder) == [])
        #expect(try files.contents(of: outside + "/kept") == [1])
    }

    @Test func errorsNameTheCallThePathsAndTheErrno() {
        #expect(SystemError("openat", ENOENT).description == "openat: No such file or directory (errno 2)")
        #expect(SystemError("rename", EACCES, path: "/a", target: "/b").description == "rename /a -> /b: Permission denied (errno 13)")
        #expect(SystemError("read", EIO).on("/f").description == "read /f: Input/output error (errno 5)")
    }
}
