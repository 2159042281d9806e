/// Strict base64 (RFC 4648, standard alphabet, `=` padding): decoding accepts only the canonical
/// encoding, so one password has exactly one spelling in a store.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group = UInt32(bytes[index]) << 16
            if count > 1 { group |= UInt32(bytes[index + 1]) << 8 }
            if count > 2 { group |= UInt32(bytes[index + 2]) }
            for position in 0..<4 {
                output.append(position <= count ? alphabet[Int((group >> (18 - 6 * position)) & 0x3F)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return output
    }

    /// The decoded bytes, or nil unless `text` is canonical base64.
    static func decode<Bytes: Collection>(_ text: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        let text = Array(text)
        guard text.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        for start in stride(from: 0, to: text.count, by: 4) {
            let chunk = text[start..<start + 4]
            let padding = chunk.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            guard padding <= 2, start + 4 == text.count || padding == 0 else { return nil }
            var group: UInt32 = 0
            for (position, byte) in chunk.enumerated() {
                let value: UInt32
                if position >= 4 - padding {
                    value = 0
                } else if let index = alphabet.firstIndex(of: byte) {
                    value = UInt32(index)
                } else {
                    return nil
                }
                group = group << 6 | value
            }
            let decoded = [UInt8(group >> 16 & 0xFF), UInt8(group >> 8 & 0xFF), UInt8(group & 0xFF)]
            output += decoded.prefix(3 - padding)
        }
        return encode(output) == text ? output : nil
    }
}
