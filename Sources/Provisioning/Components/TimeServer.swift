/// The clock's servers (docs/liteqube.md, "The clock"): host names, optionally with `http://` or
/// `https://` (htpdate does not check certificates, so a clock far off still gets an answer).
enum TimeServer {
    /// htpdate takes at most 16 servers.
    static let limit = 15
    /// The Qubes, DuckDuckGo and Facebook onion services, and one more the original lists.
    static let onion = [
        "qubesosfasa4zl44o4tws22di6kepyzfeqv3tg4e3ztknltfxqrymdad.onion", "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
        "facebookwkhpilnemxj7asaniu7vnjjbiltxjqhye3mhbshg7kx5tfyd.onion", "2s4yqjx5ul6okpp3f2gaunr2syex5jgbfpfvhxxbbjwnrsvbk5v3qbid.onion",
    ]
    static let clearnet = ["https://www.debian.org", "https://www.qubes-os.org", "https://www.torproject.org"]

    /// What is wrong with a server for the onion or the clearnet list, or `nil`.
    static func problem(_ server: String, onion: Bool) -> String? {
        var host = Substring(server)
        for scheme in ["http://", "https://"] where host.hasPrefix(scheme) { host = host.dropFirst(scheme.count) }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let isOnion = labels.count == 2 && labels[1] == "onion"
        if onion {
            let base32 = labels[0].allSatisfy { ("a"..."z").contains($0) || ("2"..."7").contains($0) }
            return isOnion && labels[0].count == 56 && base32 ? nil : "is not a v3 onion address (56 letters a-z and digits 2-7, then .onion)"
        }
        if labels.last == "onion" { return "is an onion address, which needs Tor (time_tor_servers)" }
        let valid = host.count <= 253 && labels.count >= 2 && labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
        return valid ? nil : "is not a host name (letters, digits and hyphens, in dotted labels)"
    }
}
