import QubesStore

extension Role {
    /// The USB qube: holds the USB controllers.
    public static let usb = Role(rawValue: "usb")
}

extension Manifest {
    /// Keyboards and mice on USB reach dom0 through the input proxy.
    public var usbInputDevices: Bool {
        get { self[USB.inputDevices] }
        set { self[USB.inputDevices] = newValue }
    }
}

/// USB (docs/liteqube.md, "USB qube"): core-usb replaces sys-usb; usbguard lets
/// mass storage through (and input devices when asked), everything else is
/// rejected; dom0 hears when storage comes and goes.
enum USB {
    static let inputDevices = Setting<Bool>("usb_input_devices", default: true)

    static func trees(_ overlay: inout Overlay) {
        let rules = overlay.text("/etc/usbguard/rules.conf")
            + (overlay.manifest.usbInputDevices ? overlay.text("/etc/usbguard/input-devices.rules") : "")
        overlay.directory("/etc/usbguard", mode: 0o755)
        overlay.file("/etc/usbguard/rules.conf", content: rules, mode: 0o600)
        overlay.file("/etc/usbguard/usbguard-daemon.conf", mode: 0o600)
        overlay.qubeTemplate(.usb)
        // USB storage notifications, started in the USB qube only.
        overlay.directory("/etc/udev")
        overlay.directory("/etc/udev/rules.d")
        overlay.file("/etc/udev/rules.d/99-liteqube-storage.rules")
        overlay.file("/etc/systemd/system/liteqube-storage@.service")
        overlay.script("/etc/qubes-rpc/liteqube.StorageConfig")
    }
}

extension Component {
    public static let usb = Component(id: "usb") { usb in
        usb.roles = [
            RoleSpec(.usb, name: "core-usb", presence: .alwaysOn, inServiceTotal: true, replaces: "sys-usb") { $0.profile == .lowMemory ? 176 : 208 }
        ]
        usb.settings = [USB.inputDevices.erased]
        usb.qubes = { desired in
            let dvm = desired.name(.dvm)
            let sysUSB = desired.devices(replacedBy: .usb)
            desired.add(.usb, .dispVM) {
                $0.template = dvm
                $0.virtMode = .hvm
                $0.autostart = true
                $0.devicesFrom = sysUSB
            }
            desired.retire(for: .usb, prohibitStart: true)
        }
        usb.packages = { manifest in ["qubes-usb-proxy", "usbguard"] + (manifest.usbInputDevices ? ["qubes-input-proxy-sender"] : []) }
        usb.trees = USB.trees
        usb.policy = { policy in
            policy.notify([.usb], extra: ["liteqube.SignalStorage"])
            policy.display([.usb])
            if policy.manifest.usbInputDevices {
                for service in ["qubes.InputKeyboard", "qubes.InputMouse", "qubes.InputTablet"] {
                    policy.allow(service, from: [.usb], to: "@adminvm")
                }
            }
        }
        usb.dom0Services = { _ in
            [Dom0Service(name: "liteqube.SignalStorage", urgency: "normal", milliseconds: 5000, icon: "drive-removable-media", text: "usb/dom0/text/storage")]
        }
    }
}
