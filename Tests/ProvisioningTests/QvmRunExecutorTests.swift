import Foundation
import Glibc
import Provisioning
import Testing

/// The shell `QvmRunExecutor` sends into a qube, run here by a stand-in
/// `qvm-run` that executes the command on this machine, on a temp folder:
/// it must see and change what `FolderExecutor` sees and changes.
@Suite struct QvmRunExecutorTests {
    let folder: String
    let executor: QvmRunExecutor

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-qvm-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        let standIn = folder + "/bin/qvm-run"
        // qvm-run --pass-io --no-gui -u root QUBE COMMAND, with the package tools replaced by stand-ins.
        try "#!/bin/sh\n[ \"$1 $2 $3 $4\" = '--pass-io --no-gui -u root' ] || exit 99\nPATH=\(folder)/bin:$PATH exec /bin/sh -c \"$6\"\n"
            .write(toFile: standIn, atomically: true, encoding: .utf8)
        chmod(standIn, 0o755)
        // dpkg-query answers for tor (installed) and usbguard (known, not installed); apt-get logs its arguments.
        try TemplateRoot.write(folder + "/bin/dpkg-query", "#!/bin/sh\nprintf 'tor ii \\nusbguard un \\n'\n", mode: 0o755)
        try TemplateRoot.write(folder + "/bin/apt-get", "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done >> \(folder)/apt-get.log\n", mode: 0o755)
        executor = QvmRunExecutor(qvmRun: standIn)
    }

    @Test func placesInspectsReadsAndRemovesLikeTheFolderExecutor() throws {
        let qube = "debian-core"
        let file = folder + "/it's a file"
        let directory = folder + "/folder"
        let link = folder + "/link"
        try executor.place(.directory, at: directory, owner: "root", mode: 0o750, in: qube)
        let content: [UInt8] = Array("line 'one'\n$(not run)\n".utf8) + [0, 255]
        try executor.place(.file(content), at: file, owner: "root", mode: 0o640, in: qube)
        try executor.place(.symlink(target: "/run/some where"), at: link, owner: "root", mode: 0o777, in: qube)
        #expect(try executor.read(file, in: qube) == content)
        // A program-sized file goes in and comes back whole (more than a pipe holds, both ways).
        let program = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try executor.place(.file(program), at: folder + "/program", owner: "root", mode: 0o755, in: qube)
        #expect(try executor.read(folder + "/program", in: qube) == program)

        let paths = [file, directory, link, folder + "/absent"]
        let seen = try executor.inspect(paths, in: qube)
        let local = try FolderExecutor(root: "").inspect(paths, in: qube)
        #expect(seen == local)
        #expect(seen[file]?.mode == 0o640 && seen[file]?.kind == .file && seen[file]?.owner == "root")
        #expect(seen[directory]?.mode == 0o750 && seen[directory]?.kind == .directory)
        #expect(seen[link]?.detail == "/run/some where")
        #expect(seen[folder + "/absent"] == nil)

        // Replacing keeps the path a file, atomically; a folder with files is kept by remove.
        try executor.place(.file(Array("new\n".utf8)), at: file, owner: "root", mode: 0o600, in: qube)
        #expect(try executor.inspect([file], in: qube)[file]?.mode == 0o600)
        try executor.place(.file([]), at: directory + "/inside", owner: "root", mode: 0o644, in: qube)
        try executor.remove(directory, in: qube)
        #expect(FileManager.default.fileExists(atPath: directory + "/inside"))
        for path in [directory + "/inside", directory, file, link] { try executor.remove(path, in: qube) }
        #expect(try executor.inspect(paths, in: qube).isEmpty)
    }

    @Test func packagesAreQueriedAndInstalledNonInteractively() throws {
        #expect(try executor.installed(["tor", "usbguard"], in: "debian-core") == ["tor"])
        try executor.install(["usbguard", "it's"], in: "debian-core")
        try executor.uninstall(["usbguard"], in: "debian-core")
        let log = try String(contentsOfFile: folder + "/apt-get.log", encoding: .utf8)
        #expect(log == "install\n-y\n--no-install-recommends\nusbguard\nit's\npurge\n-y\nusbguard\n")
    }

    @Test func aFailingCommandIsAnErrorNamingTheQube() throws {
        #expect(throws: ProvisioningError.self) {
            try executor.place(.file([]), at: folder + "/no/such/folder/file", owner: "root", mode: 0o644, in: "debian-core")
        }
    }
}
