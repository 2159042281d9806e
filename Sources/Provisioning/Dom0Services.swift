/// A dom0 qrexec service the service qubes call (docs/liteqube.md, "dom0 services"): a desktop
/// notification, or a script of its own (dom0's password prompt). The argument is data: qrexec
/// already limited it to `[A-Za-z0-9_.+-]`, and it reaches the desktop as one argv entry, never
/// through a shell string. The desktop user is the owner of the X display, not a fixed name.
struct Dom0Service: Sendable, Hashable {
    enum Body: Sendable, Hashable {
        /// `notify-send` with this urgency, time and icon; `text` is the resource
        /// (`<component>/dom0/text/<name>`) that turns `$argument` into `$text`, or exits (0: shows nothing, 1: refused).
        case notification(urgency: String, milliseconds: Int, icon: String, text: String)
        /// The resource (`<component>/dom0/<name>`) that is the whole script.
        case script(String)
    }

    var name: String
    var body: Body

    init(name: String, urgency: String, milliseconds: Int, icon: String, text: String) {
        self.init(name: name, body: .notification(urgency: urgency, milliseconds: milliseconds, icon: icon, text: text))
    }

    init(name: String, body: Body) {
        self.name = name
        self.body = body
    }

    /// The service script. Every script may include `{{desktop}}`: the lookup of the desktop user and
    /// the `desktop` function that runs a command as that user (`base/dom0/desktop`).
    func script(_ manifest: Manifest) throws -> String {
        let desktop = TemplateTexts.fragment(of: try TemplateTexts.text("base/dom0/desktop"))
        switch body {
        case .notification(let urgency, let milliseconds, let icon, let text):
            let values = [
                "desktop": desktop, "urgency": urgency, "milliseconds": String(milliseconds), "icon": icon,
                "text": TemplateTexts.fragment(of: try TemplateTexts.text(text)),
            ]
            return TemplateTexts.render(try TemplateTexts.text("base/dom0/notification"), manifest: manifest, values: values)
        case .script(let resource):
            return TemplateTexts.render(try TemplateTexts.text(resource), manifest: manifest, values: ["desktop": desktop])
        }
    }

    /// Every installed component's services, with their scripts.
    static func all(_ manifest: Manifest) throws -> [(name: String, content: String)] {
        try manifest.components.flatMap { $0.dom0Services(manifest) }.map { ($0.name, try $0.script(manifest)) }
    }
}
