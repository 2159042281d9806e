import LQCommon
import SystemLayer

/// What a split service needs from its invocation, as values the executable reads and passes in.
public struct ServiceContext: Sendable {
    public var system: any SystemCalls
    /// dom0 hears about each valid request (`liteqube.Message`).
    public var notifier: (any Notifier)?
    /// Re-arms the qube's shutdown timer; called for every request, valid or not.
    public var keepAlive: (@Sendable () -> Void)?

    public init(system: any SystemCalls = HostSystem(), notifier: (any Notifier)? = nil, keepAlive: (@Sendable () -> Void)? = nil) {
        self.system = system
        self.notifier = notifier
        self.keepAlive = keepAlive
    }

    /// The caller and the requested name or token, validated, after the keep-alive and before the notification.
    func accept(caller: String?, argument: [UInt8], what: String) throws(SplitError) -> (caller: String, name: String) {
        keepAlive?()
        let caller = try validateCaller(caller)
        let name = try validateArgument(argument, what: what)
        notifier?.notify(qube: caller, message: "\(caller) requested \(what == "token" ? "password" : "file") \(name)")
        return (caller, name)
    }
}

public enum ServiceRequest {
    /// The request's argument: the qrexec service argument (`QREXEC_SERVICE_ARGUMENT`, from `service+arg`)
    /// if given, else the command-line argument, else the first line of stdin (without its newline).
    public static func argument(serviceArgument: String?, positional: String?, readLine: () -> [UInt8]) -> [UInt8] {
        if let serviceArgument, !serviceArgument.isEmpty { return Array(serviceArgument.utf8) }
        if let positional { return Array(positional.utf8) }
        let line = readLine()
        return Array(line.prefix { $0 != 0x0A })
    }

    /// Re-arms a shutdown in `minutes` (`shutdown +N`; through `sudo -n` unless root), as core-keys does
    /// after each request. Failures are ignored: serving does not depend on it.
    public static func rearmShutdown(minutes: Int, system: any SystemCalls, root: Bool) {
        let arguments = ["+\(minutes)"]
        _ = root
            ? try? system.run("/sbin/shutdown", arguments, input: [], outputLimit: 0)
            : try? system.run("/usr/bin/sudo", ["-n", "/sbin/shutdown"] + arguments, input: [], outputLimit: 0)
    }
}
