import BootProtect
import Foundation
import SystemLayer

/// The boot guard's rule trees and a private volume, built on disk from the input, and a dry run over them.
let guardTargets = [
    FuzzTarget(
        name: "guard-tree",
        property: "a dry run changes nothing in the rules or the volume and reports the same twice; a removed or fixed "
            + "entry is on the volume, a deployed one in the rules; no report line quotes a file's content",
        run: guardTree),
]

/// One entry of the input: `R|W TYPE MODE UID PATH[<TAB>CONTENT]` a line, TYPE `f` file, `d` folder,
/// `l` symlink (CONTENT its target), `s` socket; `\n` in CONTENT is a newline. R is the rules folder
/// (`template.core-keys/…`, `checksum.ALL/…`, `settings.core-keys`), W the volume. Parents are folders 0755.
struct GuardTreeEntry {
    var inRules: Bool
    var type: UInt8
    var mode: UInt32
    var owner: UInt32
    var path: [Name]
    var content: [UInt8]

    static func parse(_ bytes: [UInt8]) -> [GuardTreeEntry] {
        var entries: [GuardTreeEntry] = []
        for line in bytes.split(separator: 0x0A).prefix(64) {
            let (head, content) = line.firstIndex(of: 0x09).map { (line[..<$0], Array(line[($0 + 1)...])) } ?? (line[...], [])
            let fields = head.split(separator: 0x20, maxSplits: 4)
            guard fields.count == 5, fields[0] == [0x52] || fields[0] == [0x57], fields[1].count == 1,
                  let mode = UInt32(String(decoding: fields[2], as: UTF8.self), radix: 8), mode <= 0o7777,
                  let owner = UInt32(String(decoding: fields[3], as: UTF8.self)), owner < 3000
            else { continue }
            let path = fields[4].split(separator: 0x2F).map(Array.init)
            guard !path.isEmpty, path.count <= 8, path.allSatisfy({ $0 != [0x2E] && $0 != [0x2E, 0x2E] && !$0.contains(0) && $0.count < 200 })
            else { continue }
            let decoded = String(decoding: content, as: UTF8.self).replacingOccurrences(of: "\\n", with: "\n")
            entries.append(GuardTreeEntry(inRules: fields[0] == [0x52], type: fields[1][fields[1].startIndex], mode: mode, owner: owner,
                                          path: path, content: Array(decoded.utf8)))
        }
        return entries
    }
}

/// The scratch folder of this process: `rules/` and `rw/`, emptied before each input.
let guardFolder: String = {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-fuzz-guard-\(getpid())").path
    atexit { try? SystemFileSystem().removeTree(FileManager.default.temporaryDirectory.appendingPathComponent("lq-fuzz-guard-\(getpid())").path) }
    return folder
}()

/// Creates `entry` below `root` (its parents as folders where missing); false when it cannot be made.
func make(_ entry: GuardTreeEntry, in root: String) -> Bool {
    let system = HostSystem()
    guard var fd = try? system.openDirectory(currentDirectory, Array(root.utf8), followSymlink: false) else { return false }
    defer { system.close(fd) }
    for component in entry.path.dropLast() {
        if (try? system.status(fd, component)) == nil { try? system.makeDirectory(fd, component, mode: 0o755) }
        guard let next = try? system.openDirectory(fd, component, followSymlink: false) else { return false }
        system.close(fd)
        fd = next
    }
    let name = entry.path.last!
    guard (try? system.status(fd, name)) == nil else { return false }
    do {
        switch entry.type {
        case UInt8(ascii: "f"):
            let file = try system.createFile(fd, name)
            defer { system.close(file) }
            try system.write(file, entry.content)
            try system.setOwner(file, owner: entry.owner, group: entry.owner)
            try system.setPermissions(file, entry.mode)
        case UInt8(ascii: "d"):
            try system.makeDirectory(fd, name, mode: 0o700)
            let folder = try system.openDirectory(fd, name, followSymlink: false)
            defer { system.close(folder) }
            try system.setOwner(folder, owner: entry.owner, group: entry.owner)
            try system.setPermissions(folder, entry.mode)
        case UInt8(ascii: "l"):
            guard !entry.content.isEmpty, !entry.content.contains(0) else { return false }
            try system.makeSymlink(entry.content, fd, name)
            try system.setOwner(fd, name, owner: entry.owner, group: entry.owner)
        case UInt8(ascii: "s"):
            try system.makeSocket(fd, name)
            try system.setOwner(fd, name, owner: entry.owner, group: entry.owner)
            try system.setPermissions(fd, name, entry.mode)
        default: return false
        }
    } catch {
        return false
    }
    return true
}

/// Every entry below `root`: path → type, mode, owner, and a file's content or a symlink's target.
func treeSnapshot(_ root: String) -> [String: String] {
    let system = HostSystem()
    var result: [String: String] = [:]
    func walk(_ fd: Descriptor, _ path: String) {
        for name in (try? system.entries(fd)) ?? [] {
            let child = path + "/" + displayName(name)
            guard let info = try? system.status(fd, name) else { continue }
            var detail = "\(info.type.rawValue) \(String(info.permissions, radix: 8)) \(info.owner):\(info.group)"
            switch info.type {
            case .regular:
                if let file = try? system.openFile(fd, name) {
                    detail += " " + displayName((try? system.read(file, limit: 1 << 20)) ?? [])
                    system.close(file)
                }
            case .symlink: detail += " -> " + displayName((try? system.readLink(fd, name)) ?? [])
            case .directory:
                if let folder = try? system.openDirectory(fd, name, followSymlink: false) {
                    walk(folder, child)
                    system.close(folder)
                }
            default: break
            }
            result[child] = detail
        }
    }
    if let fd = try? system.openDirectory(currentDirectory, Array(root.utf8), followSymlink: false) {
        walk(fd, "")
        system.close(fd)
    }
    return result
}

func guardTree(_ bytes: [UInt8]) {
    let files = SystemFileSystem()
    let (rules, volume) = (guardFolder + "/rules", guardFolder + "/rw")
    try? files.removeTree(guardFolder)
    do {
        try files.makeDirectories(rules)
        try files.makeDirectories(volume)
    } catch {
        fatalError("guard-tree: cannot make \(guardFolder): \(error)")
    }
    let entries = GuardTreeEntry.parse(bytes).filter { make($0, in: $0.inRules ? rules : volume) }
    let before = (treeSnapshot(rules), treeSnapshot(volume))
    let options = ProtectOptions(qube: "core-keys", dryRun: true)
    let report = BootProtect.run(volume: .folder(volume), rules: rules, options: options)
    let after = (treeSnapshot(rules), treeSnapshot(volume))
    require(before.0 == after.0, "the dry run changed the rules: \(Set(before.0.keys).symmetricDifference(after.0.keys))")
    require(before.1 == after.1, "the dry run changed the volume: \(Set(before.1.keys).symmetricDifference(after.1.keys))")
    // What a run decides; the details may name a quarantine place, which has the time in it.
    let decided = { (report: ProtectReport) in
        [report.deployed, report.fixed, report.quarantined, report.deleted].map { $0.map { "\($0.path) \($0.rule)" } }
            + [report.errors.map(\.description), [report.outcome.rawValue]]
    }
    require(decided(BootProtect.run(volume: .folder(volume), rules: rules, options: options)) == decided(report), "a second dry run reports otherwise")
    for entry in report.quarantined + report.deleted + report.fixed {
        let path = entry.path.isRoot ? "" : "/" + entry.path.description
        require(path.isEmpty || before.1[path] != nil, "\(entry) is not on the volume")
    }
    for entry in report.deployed {
        require(before.0.keys.contains { $0.hasSuffix("/" + entry.path.description) }, "\(entry) deployed from no rules entry")
    }
    let names = entries.flatMap { $0.path.map(displayName) }.joined(separator: "/")
    let lines = (report.quarantined + report.deleted + report.fixed + report.deployed).map(\.description) + report.errors.map(\.description)
    for entry in entries where entry.type == UInt8(ascii: "f") && entry.content.count >= 16 {
        let content = String(decoding: entry.content, as: UTF8.self)
        guard !names.contains(content), Array(content.utf8) == entry.content else { continue }
        require(!lines.contains { $0.contains(content) }, "a report line quotes the content of \(entry.path.map(displayName).joined(separator: "/"))")
    }
}
