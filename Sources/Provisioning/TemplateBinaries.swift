import LQCommon
import SystemLayer

/// The static program the template runs, `lq-inqube` (the boot guard, the
/// split services and the Tor qube's per-network state, called through links
/// named `lq-protect`, `lq-splitfile`, `lq-splitpassword` and `lq-torsetap`),
/// copied from dom0 into `/usr/lib/liteqube`.
public struct TemplateBinaries: Sendable, Hashable {
    public struct Binary: Sendable, Hashable {
        /// The dom0 file.
        public var source: String
        public var sha256: String
    }

    public static let names = ["lq-inqube"]
    /// The links to `lq-inqube`, one per tool.
    public static let tools = InQubeToolName.allCases.map(\.rawValue)

    /// By tool name.
    public var files: [String: Binary]

    public init(files: [String: Binary] = [:]) { self.files = files }

    /// The program from `folder`, with its digest.
    /// - Throws: `ProvisioningError` naming a tool that is missing, or that
    ///   needs the Swift runtime libraries (debian-core has none).
    public static func load(from folder: String) throws -> TemplateBinaries {
        var files: [String: Binary] = [:]
        for name in names {
            let path = folder + "/" + name
            guard let bytes = try? SystemFileSystem().contents(of: path) else {
                throw ProvisioningError(.invalidBinaries, "\(path): missing; the template needs the static tools: swift build -c release --static-swift-stdlib, then give --binaries")
            }
            if let library = ELF.neededLibraries(bytes)?.first(where: { $0.hasPrefix("libswift") || $0.hasPrefix("libFoundation") }) {
                throw ProvisioningError(.invalidBinaries, "\(path) needs \(library), which debian-core does not have; build it with: swift build -c release --static-swift-stdlib")
            }
            files[name] = Binary(source: path, sha256: sha256Hex(bytes))
        }
        return TemplateBinaries(files: files)
    }
}

/// Just enough of ELF64 (little-endian) to list a program's shared libraries.
enum ELF {
    /// The `DT_NEEDED` names, or `nil` when `bytes` is not a 64-bit little-endian ELF file.
    static func neededLibraries(_ bytes: [UInt8]) -> [String]? {
        guard bytes.count >= 64, bytes[0..<4].elementsEqual([0x7f, 0x45, 0x4c, 0x46]), bytes[4] == 2, bytes[5] == 1 else { return nil }
        func integer(_ offset: Int, _ size: Int) -> Int? {
            guard offset >= 0, offset + size <= bytes.count else { return nil }
            var value: UInt64 = 0
            for index in (0..<size).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
            return value > UInt64(Int.max) ? nil : Int(value)
        }
        guard let programHeaders = integer(32, 8), let entrySize = integer(54, 2), let count = integer(56, 2) else { return nil }
        var loads: [(address: Int, offset: Int, size: Int)] = []
        var dynamic: (offset: Int, size: Int)?
        for index in 0..<count {
            let header = programHeaders + index * entrySize
            guard let type = integer(header, 4), let offset = integer(header + 8, 8), let address = integer(header + 16, 8),
                let size = integer(header + 32, 8)
            else { return nil }
            if type == 1 { loads.append((address, offset, size)) }
            if type == 2 { dynamic = (offset, size) }
        }
        guard let dynamic else { return [] }
        var needed: [Int] = []
        var stringTable: Int?
        for entry in stride(from: dynamic.offset, to: dynamic.offset + dynamic.size, by: 16) {
            guard let tag = integer(entry, 8), let value = integer(entry + 8, 8) else { return nil }
            if tag == 0 { break }
            if tag == 1 { needed.append(value) }
            if tag == 5 { stringTable = value }
        }
        guard let stringTable,
            let load = loads.first(where: { stringTable >= $0.address && stringTable < $0.address + $0.size })
        else { return needed.isEmpty ? [] : nil }
        let base = load.offset + (stringTable - load.address)
        return needed.compactMap { offset in
            let start = base + offset
            guard start >= 0, start < bytes.count, let end = bytes[start...].firstIndex(of: 0) else { return nil }
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
    }
}
