import Foundation

/// Steps inside a qube (files and packages in debian-core): the real
/// executor runs `qvm-run --pass-io` from dom0; `FolderExecutor` applies
/// them to a folder standing for the template's root (tests, image preparation).
public protocol Executor: Sendable {
    /// The file's content, or `nil` when absent.
    func read(_ path: String, in qube: String) throws -> String?
    /// Writes a file (parent folders created), owned by root with `mode`.
    func write(_ path: String, content: String, mode: Int, in qube: String) throws
    func remove(_ path: String, in qube: String) throws
    /// Which of `packages` are installed.
    func installed(_ packages: [String], in qube: String) throws -> Set<String>
    func install(_ packages: [String], in qube: String) throws
    func uninstall(_ packages: [String], in qube: String) throws
}

/// A file Liteqube puts into its template.
public struct TemplateFile: Sendable, Hashable {
    public var path: String
    public var mode: Int
    public var content: String
}

/// Applies template steps to a folder standing for the template's root.
/// Packages are recorded in `<root>/var/lib/liteqube/packages` (one name a
/// line) for whoever builds the image.
public struct FolderExecutor: Executor {
    public let root: String

    public init(root: String) { self.root = root }

    private func local(_ path: String) -> String { root + path }
    private var packageList: String { local("/var/lib/liteqube/packages") }

    public func read(_ path: String, in qube: String) throws -> String? {
        FileManager.default.contents(atPath: local(path)).map { String(decoding: $0, as: UTF8.self) }
    }

    public func write(_ path: String, content: String, mode: Int, in qube: String) throws {
        let target = URL(fileURLWithPath: local(path))
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(content.utf8).write(to: target, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: target.path)
    }

    public func remove(_ path: String, in qube: String) throws {
        if FileManager.default.fileExists(atPath: local(path)) { try FileManager.default.removeItem(atPath: local(path)) }
    }

    private func packages() throws -> [String] {
        (try read("/var/lib/liteqube/packages", in: "")).map { $0.split(separator: "\n").map(String.init) } ?? []
    }

    private func savePackages(_ list: [String]) throws {
        if list.isEmpty { return try remove("/var/lib/liteqube/packages", in: "") }
        try write("/var/lib/liteqube/packages", content: list.map { $0 + "\n" }.joined(), mode: 0o644, in: "")
    }

    public func installed(_ packages: [String], in qube: String) throws -> Set<String> {
        Set(try self.packages()).intersection(packages)
    }

    public func install(_ packages: [String], in qube: String) throws {
        var list = try self.packages()
        for package in packages where !list.contains(package) { list.append(package) }
        try savePackages(list)
    }

    public func uninstall(_ packages: [String], in qube: String) throws {
        try savePackages(try self.packages().filter { !packages.contains($0) })
    }
}

/// Runs template steps in the qube from dom0 with `qvm-run --pass-io -u root`.
public struct QvmRunExecutor: Executor {
    public init() {}

    private func run(_ qube: String, _ command: String, input: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qvm-run")
        process.arguments = ["--pass-io", "--no-gui", "-u", "root", qube, command]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    private func checked(_ qube: String, _ command: String, input: String? = nil) throws {
        let result = try run(qube, command, input: input)
        guard result.status == 0 else { throw ProvisioningError("\(qube): '\(command)' failed with status \(result.status)") }
    }

    /// Single-quoted for sh.
    private func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    public func read(_ path: String, in qube: String) throws -> String? {
        let result = try run(qube, "test -f \(quoted(path)) && cat \(quoted(path))")
        return result.status == 0 ? result.output : nil
    }

    public func write(_ path: String, content: String, mode: Int, in qube: String) throws {
        let temporary = path + ".lq-new"
        let directory = (path as NSString).deletingLastPathComponent
        try checked(
            qube,
            "mkdir -p \(quoted(directory)) && cat > \(quoted(temporary)) && chown root:root \(quoted(temporary)) && chmod \(String(mode, radix: 8)) \(quoted(temporary)) && sync \(quoted(temporary)) && mv -f \(quoted(temporary)) \(quoted(path))",
            input: content)
    }

    public func remove(_ path: String, in qube: String) throws { try checked(qube, "rm -f \(quoted(path))") }

    public func installed(_ packages: [String], in qube: String) throws -> Set<String> {
        let result = try run(qube, "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' " + packages.map(quoted).joined(separator: " "))
        return Set(result.output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count >= 2 && fields[1].hasPrefix("ii") ? String(fields[0]) : nil
        })
    }

    public func install(_ packages: [String], in qube: String) throws {
        try checked(qube, "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + packages.map(quoted).joined(separator: " "))
    }

    public func uninstall(_ packages: [String], in qube: String) throws {
        try checked(qube, "DEBIAN_FRONTEND=noninteractive apt-get purge -y " + packages.map(quoted).joined(separator: " "))
    }
}

extension Catalog {
    /// Files of the installed components in debian-core.
    public static func templateFiles(_ manifest: Manifest) -> [TemplateFile] {
        let bin = "/usr/lib/liteqube"
        var files = [
            TemplateFile(path: "/etc/systemd/system/liteqube-vm-template.service", mode: 0o644, content: """
                [Unit]
                Description=Liteqube: deploy and check this qube's private volume before it is mounted
                DefaultDependencies=no
                After=local-fs-pre.target
                Before=qubes-mount-dirs.service rw.mount

                [Service]
                Type=oneshot
                RemainAfterExit=yes
                ExecStart=\(bin)/lq protect --device /dev/xvdb --rules /etc/protect

                [Install]
                WantedBy=sysinit.target

                """),
            TemplateFile(path: "/etc/qubes-rpc/liteqube.SplitFile", mode: 0o755, content: """
                #!/bin/sh
                # Liteqube: hand the calling qube one of its files from \(manifest.name("keys")).
                exec \(bin)/lq-splitfile serve

                """),
            TemplateFile(path: "/etc/qubes-rpc/liteqube.SplitPassword", mode: 0o755, content: """
                #!/bin/sh
                # Liteqube: hand the calling qube one of its passwords from \(manifest.name("keys")).
                exec \(bin)/lq-splitpassword serve

                """),
            TemplateFile(path: "/etc/protect/settings.\(manifest.name("core"))", mode: 0o644, content: "OBSCURE=No\n"),
            // Every qube's /rw/config starts from these (spec §2.1 template.ALL).
            TemplateFile(path: "/etc/protect/template.ALL/config/rc.local", mode: 0o755, content: "#!/bin/sh\nexit 0\n"),
            TemplateFile(path: "/etc/protect/template.ALL/config/qubes-firewall-user-script", mode: 0o755, content: "#!/bin/sh\nexit 0\n"),
            TemplateFile(path: "/etc/protect/template.ALL/config/suspend-module-blacklist", mode: 0o644, content: ""),
            // The blank disposable template wipes what its first boot left and powers off.
            TemplateFile(path: "/etc/protect/template.\(manifest.name("dvm"))/config/rc.local", mode: 0o755, content: """
                #!/bin/sh
                # Keep \(manifest.name("dvm")) empty: every disposable starts from a blank private volume.
                for entry in /rw/QUARANTINE /rw/home /rw/config; do
                    chattr -R -i "$entry" 2>/dev/null
                    rm -rf "$entry"
                done
                sync
                poweroff

                """),
            // The keys qube stays up only two minutes after the last request.
            TemplateFile(path: "/etc/protect/template.\(manifest.name("keys"))/config/rc.local", mode: 0o755, content: """
                #!/bin/sh
                fstrim /rw
                shutdown +2

                """),
        ]
        if manifest.components.contains(.network) {
            files.append(TemplateFile(path: "/etc/protect/settings.\(manifest.name("net"))", mode: 0o644, content: "QUARANTINE=Yes\n"))
        }
        return files
    }

    /// Packages the installed components need in debian-core.
    public static func templatePackages(_ manifest: Manifest) -> [String] {
        var packages = ["qubes-core-agent-passwordless-root"]
        if manifest.components.contains(.network) {
            packages += ["network-manager", "qubes-core-agent-networking", "qubes-core-agent-network-manager", "tor", "firmware-iwlwifi"]
        }
        if manifest.components.contains(.usb) {
            packages += ["usbguard", "qubes-usb-proxy"] + (manifest.usbInputDevices ? ["qubes-input-proxy-sender"] : [])
        }
        return packages
    }
}
