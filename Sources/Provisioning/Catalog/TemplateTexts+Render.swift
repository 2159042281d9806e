import Foundation

extension TemplateTexts {
    /// `text` with `{{role}}` replaced by the role's qube name and `{{key}}`
    /// by `values[key]`; unknown placeholders are left as they are (a test
    /// checks that no rendered text keeps one).
    static func render(_ text: String, manifest: Manifest, values: [String: String]) -> String {
        var out = ""
        var rest = text[...]
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            out += rest[..<open.lowerBound]
            let key = String(rest[open.upperBound..<close.lowerBound])
            let role = Role(rawValue: key)
            if let value = values[key] ?? (manifest.catalog.spec(role) != nil ? manifest.name(role) : nil) {
                out += value
            } else {
                out += rest[open.lowerBound..<close.upperBound]
            }
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// The text at `key` (`<component>/<path>`).
    /// - Throws: `ProvisioningError` when this build lacks it (a packaging mistake).
    static func text(_ key: String) throws(ProvisioningError) -> String {
        guard let text = files[key] else { throw ProvisioningError(.missingTemplateText, "this lq lacks the template text \(key); rebuild it") }
        return text
    }

    /// `text` for inserting into another: without its last newline.
    static func fragment(of text: String) -> String { text.hasSuffix("\n") ? String(text.dropLast()) : text }
}
