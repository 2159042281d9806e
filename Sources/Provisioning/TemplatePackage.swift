import LQCommon
import SystemLayer

/// The template package (docs/packaging.md, "The template package"),
/// `lq-inqube_<version>_amd64.deb`: the static program the template runs
/// (the boot guard, the split services and the Tor qube's per-network state,
/// called through links named `lq-protect`, `lq-splitfile`,
/// `lq-splitpassword`, `lq-splitssh`, `lq-storage` and `lq-torsetap`) in
/// `/usr/lib/liteqube`. Apply copies it from dom0 into that folder and
/// installs it with dpkg; destroy purges it (docs/liteqube.md, "Template overlay").
public struct TemplatePackage: Sendable, Hashable {
    /// The package's name, in dpkg's database.
    public static let name = "lq-inqube"

    public var version: String
    /// The dom0 file.
    public var source: String
    public var sha256: String

    public init(version: String, source: String, sha256: String) {
        self.version = version
        self.source = source
        self.sha256 = sha256
    }

    /// `lq-inqube_<version>_amd64.deb`, as dpkg-deb names it.
    public static func fileName(version: String) -> String { "\(name)_\(version)_amd64.deb" }

    /// Where apply puts the package in the template before installing it.
    public var templatePath: String { Overlay.programFolder + "/" + Self.fileName(version: version) }

    /// The package of `version` from `folder`, with its digest.
    /// - Throws: `ProvisioningError` when it is missing or not a Debian package.
    public static func load(from folder: String, version: String) throws -> TemplatePackage {
        let path = folder + "/" + fileName(version: version)
        guard let bytes = try? SystemFileSystem().contents(of: path) else {
            throw ProvisioningError(.invalidBinaries, "\(path): missing; scripts/release makes the template package, then give --binaries")
        }
        // A Debian package is an ar archive whose first member is debian-binary.
        guard bytes.starts(with: Array("!<arch>\ndebian-binary".utf8)) else {
            throw ProvisioningError(.invalidBinaries, "\(path) is not a Debian package (dpkg-deb makes one: scripts/release)")
        }
        return TemplatePackage(version: version, source: path, sha256: sha256Hex(bytes))
    }
}
