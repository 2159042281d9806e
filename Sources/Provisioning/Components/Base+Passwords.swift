import LQCommon

extension Manifest {
    /// Qubes that get passwords from the keys qube (`liteqube.SplitPassword`), with dom0's prompt when it
    /// holds none (docs/split-services.md, "dom0's password prompt").
    public var passwordClients: [String] {
        get { self[Base.passwordClients] }
        set { self[Base.passwordClients] = newValue }
    }
}

extension Base {
    static let passwordClients = Setting<[String]>.list("password_clients", default: [], limit: 100) { name in
        if let problem = QubeName.problem(name) { return "is not a valid qube name (\(problem))" }
        return name == "dom0" ? "is dom0, which asks for passwords itself" : nil
    }

    /// Each client's two rules: the keys qube's passwords, and dom0's prompt when the keys qube has none
    /// (the prompt is the user's consent, so the rule allows rather than asks).
    static func passwordPolicy(_ policy: inout PolicyBuilder) {
        let keys = policy.manifest.name(.keys)
        for client in policy.manifest.passwordClients {
            policy.rule("liteqube.SplitPassword", client, keys, "allow")
            policy.rule("liteqube.SplitPassword", client, "@adminvm", "allow")
        }
    }

    /// dom0's password prompt, when some qube may call it.
    static func passwordPrompt(_ manifest: Manifest) -> [Dom0Service] {
        manifest.passwordClients.isEmpty ? [] : [Dom0Service(name: "liteqube.SplitPassword", body: .script("base/dom0/liteqube.SplitPassword"))]
    }
}
