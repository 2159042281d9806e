import CBuildInfo

extension Tool {
    /// The release, shared by `lq`, `lq-inqube` and their packages (docs/packaging.md, "Version").
    public static let release = "0.1.0"
    /// The commit the build was made from, or `unknown` outside `scripts/release`.
    public static let commit = String(cString: lq_commit())
    /// What `--version` prints: `0.1.0 (commit 1a2b3c4…)`.
    public static let version = "\(release) (commit \(commit))"
}
