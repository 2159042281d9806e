import QubesAdmin
import QubesStore
import Testing

@Suite struct WireTests {
    @Test func requestBytesAreQubesadminBytes() throws {
        let request = AdminRequest(method: "admin.vm.property.Set", argument: "netvm", destination: "lq-a")
        #expect(try request.encoded() == Array("admin.vm.property.Set+netvm dom0 name lq-a\u{0}".utf8))
        let list = AdminRequest(method: "admin.vm.List")
        #expect(try list.encoded() == Array("admin.vm.List+ dom0 name dom0\u{0}".utf8))
        let big = AdminRequest(method: "admin.vm.feature.Set", argument: "x", destination: "work", payload: Array(repeating: 0x41, count: 65536))
        #expect(throws: AdminError.self) { try big.encoded() }
    }

    @Test func requestsDecodeAsQubesdDoes() {
        let device = AdminRequest.decode(Array("admin.vm.device.pci.Assign+dom0+00_14.0+8086+a0ed++p0c0330 dom0 name lq-test\u{0}mode='required'".utf8))
        #expect(device?.method == "admin.vm.device.pci.Assign")
        #expect(device?.argument == "dom0+00_14.0+8086+a0ed++p0c0330")
        #expect(device?.payload == Array("mode='required'".utf8))
        #expect(AdminRequest.decode(Array("admin.label.List dom0 keyword adminvm\u{0}".utf8))?.destination == "dom0")
        for bad in ["admin.vm.List dom0 name dom0", "admin.vm.List  dom0 name dom0\u{0}", "admin.vm.List dom0 other dom0\u{0}", "admin.vm.List dom0\u{0}"] {
            #expect(AdminRequest.decode(Array(bad.utf8)) == nil, "\(bad.debugDescription)")
        }
        #expect(AdminRequest.decode(Array("admin.vm.List+é dom0 name dom0\u{0}".utf8)) == nil)
    }

    @Test func repliesAreParsedExactly() throws {
        #expect(try AdminReply.decode(Array("0\u{0}default=True type=vm fw-net".utf8), call: "c") == .success(Array("default=True type=vm fw-net".utf8)))
        #expect(try AdminReply.decode([0x30, 0], call: "c") == .success([]))
        let exception = Array("2\u{0}QubesVMNotFoundError\u{0}\u{0}No such domain: 'nonexist'\u{0}".utf8)
        #expect(try AdminReply.decode(exception, call: "c") == .exception(className: "QubesVMNotFoundError", traceback: "", message: "No such domain: 'nonexist'"))
        do {
            _ = try AdminReply.decode(exception, call: "c").text(call: "c")
            Issue.record("an exception reply must throw")
        } catch let error as AdminError {
            #expect(error.className == "QubesVMNotFoundError")
        }
        #expect(throws: AdminError.emptyReply(call: "c")) { try AdminReply.decode([], call: "c") }
        let malformed: [[UInt8]] = [
            [0x30], Array("2\u{0}QubesException\u{0}\u{0}truncated".utf8), Array("2\u{0}A\u{0}B\u{0}C\u{0}extra".utf8),
            Array("9\u{0}x".utf8), Array("1\u{0}\u{0}connection-established\u{0}\u{0}".utf8), [0x30, 0x30], Array("2\u{0}\u{0}\u{0}m\u{0}".utf8),
        ]
        for bytes in malformed {
            #expect(throws: AdminError.self, "\(bytes)") { try AdminReply.decode(bytes, call: "c") }
        }
    }

    @Test func propertyValuesKeepSpacesAndNewlines() {
        #expect(PropertyValue(wireText: "default=False type=vm ") == PropertyValue(type: "vm", isDefault: false, value: ""))
        #expect(PropertyValue(wireText: "default=False type=str a b\nc")?.value == "a b\nc")
        #expect(PropertyValue(wireText: "default=True type=int 400")?.wireText == "default=True type=int 400")
        #expect(PropertyValue(wireText: "type=int 400") == nil)
        let tricky = PropertyValue(type: "str", isDefault: false, value: "a\\b\nc")
        #expect(tricky.getAllLine(name: "kernelopts") == "kernelopts default=False type=str a\\\\b\\nc")
        #expect(PropertyValue.parseGetAllLine(tricky.getAllLine(name: "kernelopts"))?.value == tricky)
    }

    static let eventStream: [UInt8] = Array(
        ("1\u{0}\u{0}connection-established\u{0}\u{0}"
            + "1\u{0}personal\u{0}domain-feature-set:service.cups\u{0}feature\u{0}service.cups\u{0}value\u{0}1\u{0}\u{0}"
            + "1\u{0}personal\u{0}property-set:netvm\u{0}name\u{0}netvm\u{0}newvalue\u{0}None\u{0}oldvalue\u{0}\u{0}\u{0}"
            + "1\u{0}lq-ev\u{0}domain-create-on-disk\u{0}\u{0}").utf8)

    static let expectedEvents = [
        AdminEvent(subject: "", name: "connection-established"),
        AdminEvent(subject: "personal", name: "domain-feature-set:service.cups", properties: [.init("feature", "service.cups"), .init("value", "1")]),
        AdminEvent(subject: "personal", name: "property-set:netvm", properties: [.init("name", "netvm"), .init("newvalue", "None"), .init("oldvalue", "")]),
        AdminEvent(subject: "lq-ev", name: "domain-create-on-disk"),
    ]

    @Test func eventsDecodeWhateverTheChunking() throws {
        var whole = EventDecoder()
        #expect(try whole.feed(Self.eventStream) == Self.expectedEvents)
        var dripped = EventDecoder()
        var events: [AdminEvent] = []
        for byte in Self.eventStream { events += try dripped.feed([byte]) }
        #expect(events == Self.expectedEvents)
        #expect(!dripped.hasPartialEvent)
        #expect(Self.expectedEvents.flatMap(\.encoded) == Self.eventStream)
        var garbage = EventDecoder()
        #expect(throws: AdminError.self) { try garbage.feed(Array("0\u{0}hello".utf8)) }
        var exception = EventDecoder()
        #expect(throws: AdminError.qubes(className: "QubesException", message: "boom")) {
            try exception.feed(Array("2\u{0}QubesException\u{0}\u{0}boom\u{0}".utf8))
        }
    }

    /// The event size limit holds however the bytes arrive: an event over it is refused whole as in pieces.
    @Test func anEventOverTheLimitIsRefusedWhateverTheChunking() throws {
        let event = AdminEvent(subject: "work", name: "domain-start", properties: [.init("value", String(repeating: "x", count: 100))])
        let limit = event.encoded.count - 1
        var whole = EventDecoder(maximumEventSize: limit)
        #expect(throws: AdminError.self) { try whole.feed(event.encoded) }
        var dripped = EventDecoder(maximumEventSize: limit)
        #expect(throws: AdminError.self) { for byte in event.encoded { _ = try dripped.feed([byte]) } }
        var fits = EventDecoder(maximumEventSize: limit + 1)
        #expect(try fits.feed(event.encoded) == [event])
    }

    @Test func deviceArgumentsAndSerializations() {
        let device = DeviceAssignment(
            backendDomain: "dom0", port: "00_14.0", identity: "8086:a0ed::p0c0330", mode: .required, options: [("no-strict-reset", "True")])
        #expect(DeviceWire.argument(device) == "dom0+00_14.0+8086+a0ed++p0c0330")
        #expect(DeviceWire.serialization(device, deviceClass: "pci", frontend: "lq-test")
            == "device_id='8086:a0ed::p0c0330' port_id='00_14.0' devclass='pci' backend_domain='dom0' mode='required' frontend_domain='lq-test' _no-strict-reset='True'")
        let parsed = DeviceWire.parseArgument("dom0+00_14.0+_")
        #expect(parsed?.backend == "dom0" && parsed?.port == "00_14.0" && parsed?.identity == "*")
        #expect(DeviceWire.parseSerialization("a='it\\'s' b=''")?.map(\.value) == ["it's", ""])
        #expect(DeviceWire.parseSerialization("a='unterminated") == nil)
    }
}
