/// A dom0 qrexec service the service qubes call: a desktop notification
/// (docs/liteqube.md, "dom0 services"). The argument is data: qrexec already
/// limited it to `[A-Za-z0-9_.+-]`, `_` stands for a space, and it reaches
/// `notify-send` as one argv entry, never through a shell string. The desktop
/// user is the owner of the X display, not a fixed name.
struct Dom0Service: Sendable, Hashable {
    var name: String
    var urgency: String
    var milliseconds: Int
    var icon: String
    /// The resource (`<component>/dom0/text/<name>`) that turns `$argument` into `$text`, or exits
    /// (0: shows nothing, 1: refused).
    var text: String

    /// The service script: the notification around its text.
    func script(_ manifest: Manifest) throws -> String {
        let values = [
            "urgency": urgency, "milliseconds": String(milliseconds), "icon": icon,
            "text": TemplateTexts.fragment(of: try TemplateTexts.text(text)),
        ]
        return TemplateTexts.render(try TemplateTexts.text("base/dom0/notification"), manifest: manifest, values: values)
    }

    /// Every installed component's services, with their scripts.
    static func all(_ manifest: Manifest) throws -> [(name: String, content: String)] {
        try manifest.components.flatMap { $0.dom0Services(manifest) }.map { ($0.name, try $0.script(manifest)) }
    }
}
