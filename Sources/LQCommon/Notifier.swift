import SystemLayer

/// Where the one dom0 notification of a run goes (the CLI sends `liteqube.Error` over qrexec).
public protocol Notifier: Sendable {
    func notify(qube: String, message: String)
}

/// Sends one dom0 notification as `qrexec-client-vm dom0 <service>+<message>` (`liteqube.Error` or
/// `liteqube.Message`), if the client is installed; a failure to notify is not an error of the run.
public struct QrexecNotifier: Notifier {
    public var service: String
    public var client: String
    public let system: any SystemCalls

    public init(service: String, client: String = "/usr/bin/qrexec-client-vm", system: any SystemCalls = HostSystem()) {
        self.service = service
        self.client = client
        self.system = system
    }

    public func notify(qube: String, message: String) {
        _ = try? system.run(client, ["dom0", service + "+" + qrexecArgument(message)], input: [], outputLimit: 0)
    }
}
