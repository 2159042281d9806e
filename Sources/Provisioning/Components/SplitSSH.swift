import LQCommon

extension Manifest {
    /// Qubes that get an agent socket answered by the keys qube (`liteqube.SplitSSH`), each with its own
    /// keys (`lq addkey ssh QUBE`).
    public var sshClients: [String] {
        get { self[SplitSSH.clients] }
        set { self[SplitSSH.clients] = newValue }
    }

    /// Whether dom0 asks before each agent connection (default); `false` allows the named clients.
    public var sshAsk: Bool {
        get { self[SplitSSH.ask] }
        set { self[SplitSSH.ask] = newValue }
    }
}

/// Split SSH (docs/split-services.md, "Split SSH"): the keys qube holds each client's SSH keys and
/// answers its agent requests, one private agent per connection, list and sign only.
public enum SplitSSH {
    static let clients = Setting<[String]>.list("ssh_clients", default: [], limit: 100) { name in
        if let problem = QubeName.problem(name) { return "is not a valid qube name (\(problem))" }
        return name == "dom0" ? "is dom0, which holds no agent socket" : nil
    }
    static let ask = Setting<Bool>("ssh_ask", default: true)

    static func policy(_ policy: inout PolicyBuilder) {
        let manifest = policy.manifest
        let keys = manifest.name(.keys)
        for client in manifest.sshClients {
            policy.rule("liteqube.SplitSSH", client, keys, manifest.sshAsk ? "ask default_target=\(keys)" : "allow")
        }
    }

    static func trees(_ overlay: inout Overlay) {
        for service in ["SplitSSH", "SplitSSHSave", "SplitSSHChecksum"] {
            overlay.script("/etc/qubes-rpc/liteqube." + service)
        }
    }

    /// The script `lq addkey ssh` runs as the user in a client qube: the agent socket and SSH_AUTH_SOCK.
    public static func clientInstaller(_ manifest: Manifest) throws -> String {
        TemplateTexts.render(try TemplateTexts.text("split-ssh/client/install"), manifest: manifest, values: [:])
    }
}

extension Component {
    public static let splitSSH = Component(id: "split-ssh") { ssh in
        ssh.settings = [SplitSSH.clients.erased, SplitSSH.ask.erased]
        ssh.qubes = { desired in
            let keys = desired.name(.keys)
            if let client = desired.manifest.sshClients.first(where: { $0 == keys }) {
                throw ProvisioningError(.invalidArgument, "ssh_clients: \(client) is the keys qube itself")
            }
        }
        ssh.packages = { _ in ["openssh-client"] }
        ssh.trees = SplitSSH.trees
        ssh.policy = SplitSSH.policy
    }
}
