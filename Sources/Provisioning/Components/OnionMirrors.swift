import Foundation

/// Qubes' and Debian's onion mirrors for the update sources (docs/liteqube.md, "Onion updates"). The
/// sources are rewritten where they are, so the Qubes release, the Fedora release of dom0's repository
/// paths and the Debian release stay those installed.
enum OnionMirrors {
    /// Qubes' onion service: `yum.` and `deb.` before it stand for yum.qubes-os.org and deb.qubes-os.org.
    static let qubes = "qubesosfasa4zl44o4tws22di6kepyzfeqv3tg4e3ztknltfxqrymdad.onion"
    /// deb.debian.org's onion service.
    static let debian = "2s4yqjx5ul6okpp3f2gaunr2syex5jgbfpfvhxxbbjwnrsvbk5v3qbid.onion"

    /// dom0's repository files: its own updates and the templates' (`qvm-template`).
    static let dom0Files = ["/etc/yum.repos.d/qubes-dom0.repo", "/etc/qubes/repo-templates/qubes-templates.repo"]

    /// A yum repository file of dom0 on the onion mirror: an active `baseurl` of yum.qubes-os.org
    /// points at the onion instead, and an active `metalink` of yum.qubes-os.org (a list of clearnet
    /// mirrors) becomes the onion `baseurl` of its repository, the metalink kept as a comment; a
    /// section gets one `baseurl` (a second is commented out). Other lines stay as they are, so the
    /// result rewritten again is the same.
    static func dom0Repository(_ text: String) -> String {
        let clearnet = ["https://yum.qubes-os.org/", "http://yum.qubes-os.org/"]
        let metalinkSuffix = "/repodata/repomd.xml.metalink"
        var lines: [String] = []
        var hasBaseURL = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") { hasBaseURL = false }
            guard let equals = trimmed.firstIndex(of: "=") else {
                lines.append(String(line))
                continue
            }
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            let prefix = clearnet.first(where: value.hasPrefix)
            var path = value.dropFirst(prefix?.count ?? 0)
            switch key {
            case "baseurl" where prefix == nil:
                hasBaseURL = true
                lines.append(String(line))
            case "baseurl" where prefix != nil, "metalink" where prefix != nil && path.hasSuffix(metalinkSuffix):
                if key == "metalink" {
                    path = path.dropLast(metalinkSuffix.count)
                    lines.append("#" + line)
                }
                if hasBaseURL {
                    if key == "baseurl" { lines.append("#" + line) }
                } else {
                    lines.append("baseurl = http://yum.\(qubes)/\(path)")
                    hasBaseURL = true
                }
            default:
                lines.append(String(line))
            }
        }
        return lines.joined(separator: "\n")
    }
}
