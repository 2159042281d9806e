import Foundation

/// A step inside the template, in the order it must run.
enum TemplateStep: Sendable, Hashable {
    case entry(TemplateEntry)
    case packages([String])
    /// A command run after the packages are installed (and undone by destroy).
    case command(TemplateCommand)
}

/// Lays out the entries one component puts into debian-core, in order. Text
/// files come from the component's resource folder (`Resources/<id>/` + the
/// path in the qube), with `{{role}}` replaced by that role's qube name and
/// `{{key}}` by `values[key]` (docs/components.md, "Texts").
struct Overlay {
    let manifest: Manifest
    let networks: [NetworkConnection]
    /// The disposable network qube's MAC key, when it has one (only its pin goes into the template).
    let macKey: MACSecretKey?
    /// The template package, when apply installs one.
    let package: TemplatePackage?
    /// The resource folder of the component being laid out.
    var component = ""
    /// Placeholder values besides the qube names.
    var values: [String: String] = ["bin": Overlay.programFolder, "protect": Overlay.protect]
    var steps: [TemplateStep] = []
    /// The first resource text asked for that the build does not hold (a packaging mistake; planning refuses).
    var missing: ProvisioningError?

    /// Where Liteqube's own programs live in the template.
    static let programFolder = "/usr/lib/liteqube"
    static let protect = "/etc/protect"

    init(manifest: Manifest, networks: [NetworkConnection], macKey: MACSecretKey? = nil, package: TemplatePackage?) {
        self.manifest = manifest
        self.networks = networks
        self.macKey = macKey
        self.package = package
    }

    /// Everything the components put into debian-core, in order: each
    /// component's system files (the dpkg hook first, so it also trims what
    /// the packages enable), then the packages, then each component's commands
    /// that need them (base's slimming), then each component's trees, then the manifest's `files:`.
    static func templateSteps(
        _ manifest: Manifest, package: TemplatePackage?, networks: [NetworkConnection], macKey: MACSecretKey? = nil,
        files: [QubeFiles] = []
    ) throws -> [TemplateStep] {
        var overlay = Overlay(manifest: manifest, networks: networks, macKey: macKey, package: package)
        for component in manifest.components {
            overlay.component = component.id
            component.system(&overlay)
        }
        var packages: [String] = []
        for package in manifest.components.flatMap({ $0.packages(manifest) }) where !packages.contains(package) { packages.append(package) }
        overlay.steps.append(.packages(packages))
        for component in manifest.components {
            overlay.component = component.id
            component.settle(&overlay)
        }
        for component in manifest.components {
            overlay.component = component.id
            component.trees(&overlay)
        }
        if let missing = overlay.missing { throw missing }
        try overlay.customFiles(files)
        return overlay.steps
    }

    func render(_ text: String) -> String { TemplateTexts.render(text, manifest: manifest, values: values) }

    /// The component's resource text for `path` (placeholders in the path
    /// too), filled in; a text the build lacks is kept as `missing`, which
    /// `templateSteps` throws once the components are laid out.
    mutating func text(_ path: String) -> String {
        do throws(ProvisioningError) {
            return render(try TemplateTexts.text(component + path))
        } catch {
            if missing == nil { missing = error }
            return ""
        }
    }

    /// The component's resource text for `path`, for inserting into another: without its last newline.
    mutating func fragment(_ path: String) -> String { TemplateTexts.fragment(of: text(path)) }

    mutating func directory(_ path: String, owner: String = "root", mode: Int = 0o755) {
        steps.append(.entry(TemplateEntry(path: render(path), kind: .directory, owner: owner, mode: mode)))
    }

    /// A file whose text is the component's resource at `path`.
    mutating func file(_ path: String, owner: String = "root", mode: Int = 0o644) {
        file(path, content: text(path), owner: owner, mode: mode)
    }

    /// A file with this content (data, not a text of the component).
    mutating func file(_ path: String, content: String, owner: String = "root", mode: Int = 0o644) {
        steps.append(.entry(TemplateEntry(path: render(path), kind: .file(content), owner: owner, mode: mode)))
    }

    /// A root-owned executable script from the component's resources.
    mutating func script(_ path: String) { file(path, mode: 0o755) }

    /// `root` + each folder of `relative` in turn; the last gets `owner` and `mode`.
    mutating func directories(_ root: String, _ relative: String, owner: String = "root", mode: Int = 0o755) {
        var path = root
        let parts = relative.split(separator: "/")
        for (index, part) in parts.enumerated() {
            path += "/" + part
            let last = index == parts.count - 1
            directory(path, owner: last ? owner : "root", mode: last ? mode : 0o755)
        }
    }

    mutating func command(_ command: TemplateCommand) { steps.append(.command(command)) }

    /// An entry as it is: no placeholder in its path or target is filled (names that come from the user).
    mutating func entry(_ entry: TemplateEntry) { steps.append(.entry(entry)) }

    mutating func link(_ path: String, _ target: String) {
        steps.append(.entry(TemplateEntry(path: render(path), kind: .symlink(target: render(target)), mode: 0o777)))
    }

    /// The guard's tree for a role's private volume, `template.<qube>/config`
    /// with its `rc.local` from the resources; returns the tree's path.
    @discardableResult
    mutating func qubeTemplate(_ role: Role, rcLocal: Bool = true) -> String {
        let tree = "\(Self.protect)/template.{{\(role.rawValue)}}"
        directory(tree)
        directory(tree + "/config")
        if rcLocal { script(tree + "/config/rc.local") }
        return tree
    }
}
