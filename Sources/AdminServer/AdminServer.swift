import Foundation
import Glibc
import QubesAdmin
import QubesStore

/// A qubesd stand-in for tests and benchmarks: a real Unix-socket server
/// that speaks the Admin API wire protocol and answers from an
/// `OfflineBackend`, one connection at a time.
public final class AdminSocketServer: @unchecked Sendable {
    public let socketPath: String
    public let backend: OfflineBackend
    private let listener: Int32
    private let thread: Thread
    private let finished: DispatchSemaphore
    /// How the server answers.
    public enum Mode: Sendable {
        /// From the backend, as qubesd would.
        case dispatch
        /// These bytes, whatever the request (framing tests).
        case canned([UInt8])
        /// Never: read the request, then hold the connection open.
        case silent
        /// A reply that never ends: these bytes again and again, `interval` seconds apart, until the client goes.
        case endless([UInt8], interval: Double)
        /// From the backend, but these qubes are running, as on a live system.
        case live(running: Set<String>)
        /// From the backend, with the qubes `power` holds running; `admin.vm.Shutdown` halts one.
        case powered(RunningQubes)
    }

    /// Listens on `<directory>/qubesd.sock`.
    public init(directory: String, backend: OfflineBackend, mode: Mode = .dispatch) throws {
        let socketPath = directory + "/qubesd.sock"
        self.socketPath = socketPath
        self.backend = backend
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(socketPath.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        listener = descriptor
        let handler = Handler(backend: backend, mode: mode)
        let finished = DispatchSemaphore(value: 0)
        self.finished = finished
        thread = Thread {
            defer { finished.signal() }
            while true {
                let connection = accept(descriptor, nil, nil)
                if connection < 0 { return }
                handler.serve(connection)
            }
        }
        thread.start()
    }

    /// Stops accepting and waits for the accept loop to end before the
    /// descriptor is closed (so its number cannot be reused under it).
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        close(listener)
        unlink(socketPath)
    }

    /// Reads one request to EOF, answers, closes.
    struct Handler: @unchecked Sendable {
        let backend: OfflineBackend
        let mode: Mode

        func serve(_ connection: Int32) {
            defer { close(connection) }
            var request: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(connection, &chunk, chunk.count)
                if count <= 0 { break }
                request.append(contentsOf: chunk[0..<count])
                if request.count > AdminRequest.maximumSize { return }
            }
            let reply: [UInt8]
            switch mode {
            case .dispatch: reply = AdminDispatcher(backend: backend).reply(to: request)
            case .live(let running): reply = AdminDispatcher(backend: backend, running: running).reply(to: request)
            case .powered(let power): reply = AdminDispatcher(backend: backend, power: power).reply(to: request)
            case .canned(let bytes): reply = bytes
            case .silent:
                sleep(2)
                return
            case .endless(let bytes, let interval):
                while write(bytes, to: connection) {
                    if interval > 0 { Thread.sleep(forTimeInterval: interval) }
                }
                return
            }
            _ = write(reply, to: connection)
        }

        /// Sends all of `bytes`; false once the client has gone.
        func write(_ bytes: [UInt8], to connection: Int32) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { return false }
                offset += written
            }
            return true
        }
    }
}

/// The qubes a live test server reports running, shared with the test that
/// starts and stops servers; `admin.vm.Shutdown` halts one and logs it.
public final class RunningQubes: @unchecked Sendable {
    private let lock = NSLock()
    private var names: Set<String>
    private var log: [String] = []

    public init(_ names: Set<String> = []) { self.names = names }

    /// The qubes running now.
    public var running: Set<String> { lock.withLock { names } }
    /// The qubes shut down through the Admin API, in order.
    public var shutDown: [String] { lock.withLock { log } }

    /// Makes exactly `qubes` run.
    public func set(_ qubes: Set<String>) { lock.withLock { names = qubes } }

    /// Halts `qube`; false when it was not running.
    func halt(_ qube: String) -> Bool {
        lock.withLock {
            guard names.remove(qube) != nil else { return false }
            log.append(qube)
            return true
        }
    }
}

/// Maps Admin API requests onto a `Backend` and formats the answers as qubesd does.
public struct AdminDispatcher {
    public let backend: Backend
    /// Qubes reported running (`admin.vm.List`, `admin.vm.CurrentState`), as on a live system.
    public let running: Set<String>
    /// Running qubes that `admin.vm.Shutdown` halts (then `running` is theirs).
    let power: RunningQubes?

    public init(backend: Backend, running: Set<String> = []) {
        self.backend = backend
        self.running = running
        power = nil
    }

    /// Answers with `power`'s qubes running; a shutdown halts them.
    public init(backend: Backend, power: RunningQubes) {
        self.backend = backend
        self.running = power.running
        self.power = power
    }

    private func powerState(of qube: String, _ stored: String) -> String { running.contains(qube) ? "Running" : stored }

    /// The reply bytes for request bytes; empty where qubesd drops the connection.
    public func reply(to bytes: [UInt8]) -> [UInt8] {
        guard let request = AdminRequest.decode(bytes) else { return [] }
        do {
            return AdminReply.success(Array(try answer(request).utf8)).encoded
        } catch let error as AdminError {
            if case .qubes(let className, let message) = error {
                return AdminReply.exception(className: className, traceback: "", message: message).encoded
            }
            return []
        } catch {
            return []
        }
    }

    private func protocolError(_ message: String) -> AdminError { .qubes(className: "ProtocolError", message: message) }

    private func lines(_ items: [String]) -> String { items.map { $0 + "\n" }.joined() }

    private func answer(_ request: AdminRequest) throws -> String {
        let dest = request.destination
        let payload = String(decoding: request.payload, as: UTF8.self)
        let argument = request.argument
        _ = try backend.powerState(of: dest)
        let parts = request.method.split(separator: ".").map(String.init)
        if request.method.hasPrefix("admin.property.") || request.method.hasPrefix("admin.vm.property.") {
            let global = request.method.hasPrefix("admin.property.")
            if global && dest != "dom0" { throw protocolError("expected destination to be AdminVM") }
            let qube = global ? nil : dest
            switch parts.last! {
            case "List": return lines(try backend.propertyNames(of: qube))
            case "GetAll": return lines(try backend.allProperties(of: qube).map { $0.value.getAllLine(name: $0.name) })
            case "Get": return try backend.property(argument, of: qube).wireText
            case "GetDefault": return try backend.propertyDefault(argument, of: qube).map { "type=\($0.type) \($0.value)" } ?? ""
            case "Set": try backend.setProperty(argument, of: qube, to: payload)
            case "Reset": try backend.resetProperty(argument, of: qube)
            default: throw protocolError("no such method: '\(request.method)'")
            }
            return ""
        }
        if parts.count == 5 && parts[2] == "device" {
            guard let (backendQube, port, identity) = DeviceWire.parseArgument(argument) ?? (argument.isEmpty ? (nil, "*", "*") : nil) else {
                throw protocolError("invalid device argument")
            }
            let deviceClass = parts[3]
            var device = DeviceAssignment(backendDomain: backendQube, port: port, identity: identity, mode: .required)
            switch parts[4] {
            case "Assigned":
                return lines(try backend.assignedDevices(of: dest, deviceClass: deviceClass).map {
                    "\($0.backendDomain ?? "*")+\($0.port):\($0.identity) " + DeviceWire.serialization($0, deviceClass: deviceClass, frontend: dest)
                })
            case "Assign":
                guard let parsed = DeviceWire.assignment(fromSerialization: payload) else { throw protocolError("expected payload") }
                device.mode = parsed.mode
                device.options = parsed.options
                try backend.assign(device, deviceClass: deviceClass, to: dest)
            case "Unassign": try backend.unassign(device, deviceClass: deviceClass, from: dest)
            case "Available":
                return lines(try backend.availableDevices(of: dest, deviceClass: deviceClass).map { entry in
                    "\(entry.port):\(entry.identity) " + entry.properties.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
                })
            default: throw protocolError("no such method: '\(request.method)'")
            }
            return ""
        }
        if parts.count == 4 && (parts[2] == "Create" || parts[2] == "CreateInPool"), let vmClass = VMClass(rawValue: parts[3]) {
            var options: [String: String] = [:]
            for pair in payload.split(separator: " ") {
                let keyValue = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard keyValue.count == 2, options[keyValue[0]] == nil else { throw protocolError("Options must be unique") }
                options[keyValue[0]] = keyValue[1]
            }
            var pools: [String: String] = [:]
            for (key, value) in options where key.hasPrefix("pool:") { pools[String(key.dropFirst(5))] = value }
            guard let name = options["name"], let label = options["label"] else { throw protocolError("Creation requested without key: name") }
            try backend.create(
                Store.NewQube(vmClass: vmClass, name: name, label: label, template: argument.isEmpty ? nil : argument,
                              pool: options["pool"], pools: pools))
            return ""
        }
        switch request.method {
        case "admin.vm.List":
            let qubes = try backend.qubes().filter { dest == "dom0" || $0.name == dest }
            return lines(qubes.map { "\($0.name) class=\($0.vmClass.rawValue) state=\(powerState(of: $0.name, $0.state.rawValue)) uuid=\($0.uuid)" })
        case "admin.vm.Remove": try backend.remove(dest)
        case "admin.vm.feature.List": return lines(try backend.features(of: dest))
        case "admin.vm.feature.Get": return try backend.feature(argument, of: dest)
        case "admin.vm.feature.Set": try backend.setFeature(argument, to: payload, of: dest)
        case "admin.vm.feature.Remove": try backend.removeFeature(argument, of: dest)
        case "admin.vm.tag.List": return lines(try backend.tags(of: dest))
        case "admin.vm.tag.Get": return try backend.hasTag(argument, on: dest) ? "1" : "0"
        case "admin.vm.tag.Set": try backend.addTag(argument, to: dest)
        case "admin.vm.tag.Remove": try backend.removeTag(argument, from: dest)
        case "admin.label.List": return lines(try backend.labels())
        case "admin.label.Get": return try backend.labelColor(argument)
        case "admin.pool.List": return lines(try backend.pools())
        case "admin.pool.Info": return lines(try backend.poolInfo(argument).map { "\($0.key)=\($0.value)" })
        case "admin.vm.volume.List": return lines(try backend.volumes(of: dest))
        case "admin.vm.volume.Info": return lines(try backend.volumeInfo(argument, of: dest).map { "\($0.key)=\($0.value)" })
        case "admin.vm.volume.Set.rw":
            guard let flag = ValueParsers.bool(payload) else { throw protocolError("Payload is not boolean ASCII") }
            try backend.setVolumeReadWrite(argument, of: dest, to: flag)
        case "admin.vm.volume.Resize":
            guard let size = Int64(payload.trimmingCharacters(in: .whitespaces)), size >= 0 else { throw protocolError("Invalid volume size") }
            try backend.resizeVolume(argument, of: dest, to: size)
        case "admin.vm.volume.CloneFrom":
            _ = try backend.volumeInfo(argument, of: dest)
            return dest + ":" + argument
        case "admin.vm.volume.CloneTo":
            guard let colon = payload.firstIndex(of: ":") else { throw protocolError("Invalid token") }
            try backend.cloneVolume(argument, from: String(payload[..<colon]), to: dest)
        case "admin.vm.CurrentState": return "mem=0 mem_static_max=0 cputime=0 power_state=\(powerState(of: dest, try backend.powerState(of: dest)))"
        case "admin.vm.Start": try backend.start(dest)
        case "admin.vm.Shutdown":
            if power?.halt(dest) == true { return "" }
            try backend.shutdown(dest, force: argument.contains("force"), wait: argument.contains("wait"))
        case "admin.vm.Kill": try backend.kill(dest)
        default: throw protocolError("no such method: '\(request.method)'")
        }
        return ""
    }
}

