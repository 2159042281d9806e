import Glibc
import QubesStore
import Synchronization
import SystemLayer
import Testing

@Suite("PersistenceTests")
struct PersistenceTests {
    // 1. Round trip, stamps, mode.

    @Test(arguments: [UInt32(0o660), 0o606, 0o644])
    func replaceThenReadKeepsMode(mode: UInt32) throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<old/>\n")
            #expect(chmod(path, mode_t(mode)) == 0)  // chmod: the umask does not apply
            let store = StoreFile(path: path)
            let before = try store.read()
            #expect(before.bytes == Array("<old/>\n".utf8))

            let stamp = try store.replace(with: Array("<new/>\n".utf8), expecting: before.stamp)
            let after = try store.read()
            #expect(after.bytes == Array("<new/>\n".utf8))
            #expect(after.stamp == stamp)
            #expect(stamp != before.stamp)
            #expect(stamp.inode != before.stamp.inode)  // a new file, renamed into place
            #expect(permissions(path) == mode)
            #expect(listDirectory(directory) == ["qubes.xml"])
            #expect(isUnlocked(path))
        }
    }

    @Test func replaceCreatesMissingFileOnlyWithoutExpectedStamp() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            let store = StoreFile(path: path)
            let someStamp = FileStamp(device: 1, inode: 2, size: 3, mtimeSeconds: 4, mtimeNanoseconds: 5)
            #expect(throws: StoreError.self) { try store.replace(with: [1], expecting: someStamp) }
            #expect(listDirectory(directory) == [])

            let stamp = try store.replace(with: Array("<created/>".utf8), expecting: nil)
            #expect(contents(path) == "<created/>")
            #expect(permissions(path) == 0o660)
            #expect(try store.read().stamp == stamp)
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    @Test func emptyContent() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<something/>")
            let store = StoreFile(path: path)
            try store.replace(with: [], expecting: nil)
            #expect(try store.read().bytes == [])
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    @Test func readOfMissingFileIsAnOSError() throws {
        try withTempDirectory { directory in
            let path = directory + "/missing.xml"
            do {
                _ = try StoreFile(path: path).read()
                Issue.record("read of a missing file succeeded")
            } catch let error as StoreError {
                #expect(error.kind == .osError)
                #expect(error.file == path)
                #expect(error.message == "open \(path): No such file or directory (errno 2)")
            }
        }
    }

    // 2. A failure at each step leaves the old file and no temp file.

    @Test(arguments: FailingFileSystem.Step.allCases)
    func failureLeavesOldFileIntact(step: FailingFileSystem.Step) throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<old/>\n", mode: 0o660)
            let store = StoreFile(path: path, fileSystem: FailingFileSystem(failing: step))
            #expect {
                try store.replace(with: Array("<new content/>\n".utf8), expecting: nil)
            } throws: { error in
                (error as? StoreError)?.message.hasPrefix("injected failure at \(step) #1") == true
            }
            if step == .fsyncDirectory {
                // The rename already happened: the new file is in place, only its durability is in doubt.
                #expect(contents(path) == "<new content/>\n")
            } else {
                #expect(contents(path) == "<old/>\n")
            }
            #expect(listDirectory(directory) == ["qubes.xml"])
            #expect(isUnlocked(path))
        }
    }

    @Test func failureAtTheSecondWrite() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "v0")
            let store = StoreFile(path: path, fileSystem: FailingFileSystem(failing: .write, at: 2))
            try store.replace(with: Array("v1".utf8), expecting: nil)
            #expect(throws: StoreError.self) { try store.replace(with: Array("v2".utf8), expecting: nil) }
            #expect(contents(path) == "v1")
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    @Test func failedCreationLeavesNoFile() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            for step in [FailingFileSystem.Step.openTemp, .setAttributes, .write, .rename] {
                let store = StoreFile(path: path, fileSystem: FailingFileSystem(failing: step))
                #expect(throws: StoreError.self) { try store.replace(with: [1, 2, 3], expecting: nil) }
                #expect(listDirectory(directory) == [], "failing at \(step)")
            }
        }
    }

    @Test func modifyFailureLeavesOldFileIntact() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<old/>")
            let store = StoreFile(path: path, fileSystem: FailingFileSystem(failing: .fsyncTemp))
            #expect(throws: StoreError.self) { try store.modify { bytes, _ in bytes + [0x0A] } }
            #expect(contents(path) == "<old/>")
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    // 3. Stale stamps.

    @Test func staleStampAfterAnotherWriterReplacedTheFile() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<ours/>")
            let store = StoreFile(path: path)
            let loaded = try store.read()
            try StoreFile(path: path).replace(with: Array("<theirs/>".utf8), expecting: nil)
            do {
                try store.replace(with: Array("<ours, edited/>".utf8), expecting: loaded.stamp)
                Issue.record("replace with a stale stamp succeeded")
            } catch let error as StoreError {
                #expect(error.kind == .qubesException)
                #expect(error.message == "Someone else modified qubes.xml in the meantime")
                #expect(error.file == path)
            }
            #expect(contents(path) == "<theirs/>")
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    @Test func staleStampAfterOnlyTheMtimeChanged() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<same/>")
            let store = StoreFile(path: path)
            let loaded = try store.read()
            // Same inode, size and content; only the mtime (here just its nanoseconds) differs.
            var times = [
                timespec(tv_sec: Int(loaded.stamp.mtimeSeconds), tv_nsec: 0),
                timespec(tv_sec: Int(loaded.stamp.mtimeSeconds), tv_nsec: Int(loaded.stamp.mtimeNanoseconds + 1) % 1_000_000_000),
            ]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
            #expect(throws: StoreError(.qubesException, "Someone else modified qubes.xml in the meantime", file: path)) {
                try store.replace(with: Array("<edited/>".utf8), expecting: loaded.stamp)
            }
            #expect(contents(path) == "<same/>")
        }
    }

    @Test func currentStampIsAccepted() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "a")
            let store = StoreFile(path: path)
            let first = try store.replace(with: Array("b".utf8), expecting: try store.read().stamp)
            let second = try store.replace(with: Array("c".utf8), expecting: first)
            #expect(try store.read().stamp == second)
            #expect(contents(path) == "c")
        }
    }

    @Test func modifyReturningNilWritesNothing() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "unchanged")
            let store = StoreFile(path: path)
            let before = try store.read().stamp
            let stamp = try store.modify { bytes, stamp in
                #expect(bytes == Array("unchanged".utf8))
                #expect(stamp == before)
                return nil
            }
            #expect(stamp == before)
            #expect(try store.read().stamp == before)
        }
    }

    // 4. Locks.

    /// OFD locks belong to one open() of the file, so two threads of this process exclude each
    /// other just as two processes would. POSIX record locks (lockf, F_SETLKW) belong to the
    /// whole process: the second thread's request would be granted at once (the process already
    /// owns the lock) and updates would be lost; closing any fd of the file would also drop them.
    @Test func concurrentModifyLosesNoUpdate() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "")
            let store = StoreFile(path: path)
            let errors = Shared<[String]>([])
            let threads = (0..<2).map { thread in
                startThread {
                    for iteration in 0..<50 {
                        do {
                            try store.modify { bytes, _ in bytes + Array("thread \(thread) line \(iteration)\n".utf8) }
                        } catch {
                            errors.update { $0.append("\(error)") }
                        }
                    }
                }
            }
            for thread in threads { pthread_join(thread, nil) }
            #expect(errors.value == [])
            let lines = contents(path)!.split(separator: "\n")
            #expect(lines.count == 100)
            #expect(Set(lines).count == 100)
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    /// A writer that waited for the lock while the file was replaced (as qubesd replaces it)
    /// must lock and modify the new file, not the unlinked old one.
    @Test func modifyFollowsAFileReplacedWhileWaiting() throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "old\n")
            let fd = open(path, O_RDWR)
            #expect(fd >= 0)
            #expect(writeLock(fd, command: ofdSetLockWait))

            let errors = Shared<[String]>([])
            let thread = startThread {
                do {
                    try StoreFile(path: path).modify { bytes, _ in bytes + Array("appended\n".utf8) }
                } catch {
                    errors.update { $0.append("\(error)") }
                }
            }
            usleep(100_000)  // let the thread open the old file and wait for its lock
            writeFile(directory + "/other", "new\n")
            #expect(rename(directory + "/other", path) == 0)
            close(fd)  // releases the lock on the old file
            pthread_join(thread, nil)
            #expect(errors.value == [])
            #expect(contents(path) == "new\nappended\n")
            #expect(listDirectory(directory) == ["qubes.xml"])
        }
    }

    /// `read()` waits for a writer's lock: an OFD lock, or a POSIX lock as qubesd takes with
    /// `fcntl.lockf` (on Linux the two kinds conflict, even within one process).
    @Test(arguments: [("OFD", ofdSetLockWait), ("POSIX", F_SETLKW)])
    func readWaitsForExclusiveLock(kind: String, command: Int32) throws {
        try withTempDirectory { directory in
            let path = directory + "/qubes.xml"
            writeFile(path, "<locked/>")
            let fd = open(path, O_RDWR)
            #expect(fd >= 0)
            var closed = false
            defer { if !closed { close(fd) } }
            #expect(writeLock(fd, command: command), "\(kind) lock")

            let result = Shared<Result<[UInt8], StoreError>?>(nil)
            let thread = startThread {
                do {
                    let bytes = try StoreFile(path: path).read().bytes
                    result.update { $0 = .success(bytes) }
                } catch {
                    result.update { $0 = .failure(error as! StoreError) }
                }
            }
            usleep(100_000)
            #expect(result.value == nil, "read() finished while the file was locked")

            close(fd)  // releases the lock
            closed = true
            pthread_join(thread, nil)
            #expect(result.value == .success(Array("<locked/>".utf8)))
        }
    }
}

