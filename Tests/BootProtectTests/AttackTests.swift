import BootProtect
import Foundation
import Glibc
import LQCommon
import SystemLayer
import Testing

/// What a compromised qube can plant in its own /rw before the next boot.
@Suite(.timeLimit(.minutes(2))) struct AttackTests {
    @Test func symlinkNamedLikeATemplateFileNeverReachesItsTarget() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.directory("rules/template.ALL/home/user", mode: 0o750, owner: 1000, group: 1000)
        try box.bytes("rules/checksum.ALL/secret", ChecksumPin(of: Array("same\n".utf8)).fileBytes, mode: 0o600, owner: 1000, group: 1000)
        // Targets outside the volume with content identical to what the rules expect.
        try box.file("outside/rc.local", "exit 0\n", mode: 0o600, owner: 1000, group: 1000)
        try box.file("outside/secret", "same\n", mode: 0o644)
        try box.file("outside/home/.bashrc", "mine\n", mode: 0o644)
        try box.symlink("rw/config/rc.local", to: box.outside + "/rc.local")
        try box.symlink("rw/home/user", to: box.outside + "/home")
        try box.symlink("rw/secret", to: box.outside + "/secret")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["config/rc.local", "home/user", "secret"])
        #expect(report.deployedPaths == ["config/rc.local", "home/user"])
        #expect(box.mode("outside/rc.local") == 0o600 && box.owner("outside/rc.local") == 1000 && !box.isImmutable("outside/rc.local"))
        #expect(box.mode("outside/secret") == 0o644 && !box.isImmutable("outside/secret"))
        #expect(box.mode("outside/home") == 0o755 && box.owner("outside/home") == 0 && box.list("outside/home") == [".bashrc"])
        #expect(box.content("rw/config/rc.local") == "exit 0\n" && !box.isSymlink("rw/config/rc.local"))
        #expect(box.isDirectory("rw/home/user") && box.mode("rw/home/user") == 0o750)
        #expect(!box.exists("rw/secret"), "a pinned file is never restored, only verified")
    }

    @Test func symlinkLoopsAreQuarantinedWithoutBeingResolved() throws {
        let box = try Sandbox()
        try box.directory("rules/template.ALL/config")
        try box.symlink("rw/loop1", to: "loop2")
        try box.symlink("rw/loop2", to: "loop1")
        try box.symlink("rw/config", to: "config")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["config", "loop1", "loop2"])
        #expect(report.deployedPaths == ["config"] && box.isDirectory("rw/config"))
    }

    @Test func fifoWhereAFileIsExpectedIsReplacedWithoutBlocking() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n")
        try box.bytes("rules/checksum.ALL/pinned", ChecksumPin(of: []).fileBytes)
        try box.directory("rw/config")
        box.fifo("rw/config/rc.local")
        box.fifo("rw/pinned")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["config/rc.local", "pinned"])
        #expect(report.quarantined.map(\.detail) == [
            "a fifo where the template has a file; moved to QUARANTINE/rc.local",
            "a fifo where a pinned file is expected; moved to QUARANTINE/pinned",
        ])
        #expect(box.content("rw/config/rc.local") == "exit 0\n")
    }

    @Test func directorySwappedForASymlinkBetweenScanAndActionIsLeftAlone() throws {
        let box = try Sandbox()
        try box.directory("rules/template.ALL/home/user", mode: 0o700, owner: 1000, group: 1000)
        try box.file("rules/template.ALL/home/user/.bashrc", "x\n", mode: 0o600, owner: 1000, group: 1000)
        try box.file("rw/home/user/.bashrc", "x\n")
        try box.file("outside/victim/.bashrc", "x\n")
        let rw = box.rw
        let victim = box.outside + "/victim"
        let parked = box.outside + "/parked"
        // Rules loading opens rules/…/home/user once; the guard's second `openat` of "user" is the
        // action on the volume entry that its `fstatat` just saw as a directory.
        let counter = Counter()
        let system = HostSystem { call, name in
            guard call == "openat", name == Array("user".utf8), counter.next() == 2 else { return }
            rename(rw + "/home/user", parked)
            symlink(victim, rw + "/home/user")
        }
        let report = box.run(system: system)
        #expect(report.errors.map(\.code) == [.changed])
        #expect(report.errors.first?.path == "home/user")
        #expect(box.mode("outside/victim") == 0o755 && box.owner("outside/victim") == 0)
        #expect(box.mode("outside/victim/.bashrc") == 0o644 && !box.isImmutable("outside/victim/.bashrc"))
        #expect(box.isSymlink("rw/home/user"), "left for the next boot; nothing followed")
    }

    @Test func hardLinkedTemplateOrPinnedFilesAreNotFixedInPlace() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.bytes("rules/checksum.ALL/pinned", ChecksumPin(of: Array("same\n".utf8)).fileBytes)
        try box.file("rules/whitelist.ALL/keep/.any_file")
        try box.file("rw/keep/mine", "exit 0\n", mode: 0o666, owner: 1000, group: 1000)
        try box.file("rw/keep/other", "same\n", mode: 0o666)
        try box.directory("rw/config")
        #expect(link(box.rw + "/keep/mine", box.rw + "/config/rc.local") == 0)
        #expect(link(box.rw + "/keep/other", box.rw + "/pinned") == 0)
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["config/rc.local", "pinned"])
        #expect(report.quarantined.map(\.detail) == [
            "the file has 2 hard links; moved to QUARANTINE/rc.local", "the pinned file has 2 hard links; moved to QUARANTINE/pinned",
        ])
        #expect(box.mode("rw/keep/mine") == 0o666 && box.owner("rw/keep/mine") == 1000 && !box.isImmutable("rw/keep/mine"))
        #expect(box.mode("rw/config/rc.local") == 0o755 && box.isImmutable("rw/config/rc.local"))
    }

    @Test func tenThousandFiles() throws {
        let box = try Sandbox()
        try box.directory("rules/template.ALL/usrlocal/share")
        try box.directory("rules/whitelist.ALL/junk")
        try box.directory("rw/usrlocal/share")
        try box.directory("rw/junk")
        for index in 0..<5000 {
            let name = String(format: "f%04d", index)
            try box.file("rules/template.ALL/usrlocal/share/" + name, name, mode: 0o644)
            try box.file("rw/usrlocal/share/" + name, name, mode: 0o666)
            try box.file("rw/junk/" + name, "junk")
        }
        let clock = ContinuousClock()
        var report: ProtectReport?
        let elapsed = clock.measure { report = box.run() }
        print("BootProtect: 10,000 files (5,000 template files fixed and made immutable, 5,000 quarantined) in \(elapsed)")
        #expect(report?.errors.isEmpty == true)
        #expect(report?.fixed.count == 5000 && report?.quarantined.count == 5000)
        #expect(box.list("rw/QUARANTINE").count == 5000)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.withLock { value += 1; return value } }
}
