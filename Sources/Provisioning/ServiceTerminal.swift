import QubesStore
import LQCommon

/// A root terminal in a Liteqube service qube, shown through the display qube (docs/liteqube.md,
/// "Terminals"): `qvm-run` starts debian-core's `liteqube-xterm` as root with the command as
/// arguments (qubes.VMExec, no shell in dom0 or in the qube).
public struct ServiceTerminal: Sendable {
    public var qvmRun: String

    public init(qvmRun: String = "/usr/bin/qvm-run") { self.qvmRun = qvmRun }

    /// `qvm-run`'s arguments for a terminal in `qube` running `command` (a login shell when empty).
    public func arguments(qube: String, command: [String]) throws -> [String] {
        if let problem = QubeName.problem(qube) { throw ProvisioningError(.invalidArgument, "qube '\(qube)': \(problem)") }
        if let empty = command.firstIndex(where: \.isEmpty) { throw ProvisioningError(.invalidArgument, "command argument \(empty + 1) is empty") }
        return ["--user", "root", "--no-gui", "--no-shell", qube, "--", Overlay.programFolder + "/liteqube-xterm", qube] + command
    }

    /// Starts the terminal (the qube starts first if it is not running).
    public func open(qube: String, command: [String]) throws {
        _ = try runProgram(qvmRun, try arguments(qube: qube, command: command), failure: "\(qube): \(qvmRun)")
    }
}
