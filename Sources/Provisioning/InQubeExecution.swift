/// How steps inside qubes run, as `lq plan|apply --in-qube` names it:
/// `qvm-run` from dom0, or `folder:DIR[,QUBE=DIR…]` — folders standing for
/// the template's root and for other qubes' (tests, image preparation).
public enum InQubeExecution: Sendable, Hashable {
    case qvmRun
    case folders(root: String, others: [String: String])

    /// Parses the option's text; the error names the part that is wrong.
    public init(parsing text: String) throws {
        if text == "qvm-run" {
            self = .qvmRun
            return
        }
        guard text.hasPrefix("folder:") else {
            throw ProvisioningError(.invalidArgument, "--in-qube must be qvm-run or folder:DIR[,QUBE=DIR…], not '\(text)'")
        }
        let parts = text.dropFirst(7).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        var others: [String: String] = [:]
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, !pair[0].isEmpty, !pair[1].isEmpty else {
                throw ProvisioningError(.invalidArgument, "--in-qube folder:DIR,QUBE=DIR…: '\(part)' is not QUBE=DIR")
            }
            others[pair[0]] = pair[1]
        }
        guard let root = parts.first, !root.isEmpty else { throw ProvisioningError(.invalidArgument, "--in-qube folder: needs the template's folder") }
        self = .folders(root: root, others: others)
    }

    /// The executor, with the template's folder standing for the manifest's template.
    public func executor(for manifest: Manifest) -> Executor {
        switch self {
        case .qvmRun: QvmRunExecutor()
        case .folders(let root, let others): FolderExecutor(root: root, template: manifest.name(.core), others: others)
        }
    }
}
