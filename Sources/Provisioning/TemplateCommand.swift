/// A command a component runs inside the template after its packages are
/// installed (base's slimming, docs/liteqube.md, "Slimming debian-core"):
/// shell command lines run as root, each one line.
public struct TemplateCommand: Sendable, Hashable, Codable {
    /// What it does, for people (the plan's summary).
    public var summary: String
    /// Does it; fails rather than half do it.
    public var run: String
    /// Exits 0 when `run` has been done and nothing it depends on has changed since.
    public var check: String
    /// Undoes it (`lq destroy`); harmless when `run` never ran.
    public var undo: String

    public init(summary: String, run: String, check: String, undo: String) {
        self.summary = summary
        self.run = run
        self.check = check
        self.undo = undo
    }
}
