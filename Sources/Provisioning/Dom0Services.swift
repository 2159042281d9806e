extension Catalog {
    /// dom0's notification services the service qubes call (spec §4.1
    /// `liteqube.Message`, `liteqube.Error`; with Network `liteqube.SignalWifi`
    /// and `liteqube.SignalTor`, with USB `liteqube.SignalStorage`). Widget-only
    /// reports (signal strength, bootstrap percentages) show nothing. The argument is data: qrexec already limited
    /// it to `[A-Za-z0-9_.+-]`, `_` stands for a space, and it reaches
    /// `notify-send` as one argv entry, never through a shell string. The
    /// desktop user is the owner of the X display, not a fixed name.
    static func dom0Services(_ manifest: Manifest) -> [(name: String, content: String)] {
        var services = [
            ("liteqube.Message", notification(urgency: "normal", milliseconds: 2000, icon: "dialog-information", text: plainText)),
            ("liteqube.Error", notification(urgency: "critical", milliseconds: 5000, icon: "dialog-error", text: plainText)),
        ]
        if manifest.components.contains(.network) {
            services.append(("liteqube.SignalWifi", notification(urgency: "normal", milliseconds: 3000, icon: "network-wireless", text: wifiText)))
            services.append(("liteqube.SignalTor", notification(urgency: "normal", milliseconds: 3000, icon: "network-vpn", text: torText)))
        }
        if manifest.components.contains(.usb) {
            services.append(("liteqube.SignalStorage", notification(urgency: "normal", milliseconds: 5000, icon: "drive-removable-media", text: storageText)))
        }
        return services
    }

    /// The argument with `_` read as a space.
    private static let plainText = """
        text=$(printf '%s' "$argument" | tr '_' ' ')
        """

    /// From core-net: `ST-100` connected, `ST-0` disconnected, `AP-<name>` the network, `EN-0|1` radio
    /// off or on; `ST-30` (connecting) and `SI-<n>` (signal strength) show nothing.
    private static let wifiText = """
        case "$argument" in
            ST-100) text="Connected" ;;
            ST-0) text="Disconnected" ;;
            AP-?*) text="Network: $(printf '%s' "${argument#AP-}" | tr '_' ' ')" ;;
            EN-1) text="Wi-Fi on" ;;
            EN-0) text="Wi-Fi off" ;;
            ST-30 | SI-[0-9]*) exit 0 ;;
            *) exit 1 ;;
        esac
        """

    /// From core-tor: `100` connected, `200` disconnected; other numbers (bootstrap progress, 999
    /// silent) show nothing.
    private static let torText = """
        case "$argument" in
            100) text="Tor connected" ;;
            200) text="Tor disconnected" ;;
            *[!0-9]* | "") exit 1 ;;
            *) exit 0 ;;
        esac
        """

    /// `A_<device>_<type>_<size>` (arrived) or `R_<device>` (removed), from `lq-storage`; anything else is refused.
    private static let storageText = """
        case "$argument" in
            A_*_*_*)
                rest=${argument#A_}
                device=${rest%%_*}
                rest=${rest#*_}
                text="USB storage $device: ${rest%_*}, ${rest##*_}" ;;
            R_*) text="USB storage ${argument#R_} removed" ;;
            *) exit 1 ;;
        esac
        """

    private static func notification(urgency: String, milliseconds: Int, icon: String, text: String) -> String {
        """
        #!/bin/sh
        # Liteqube (dom0): a notification from a service qube; the caller is named by qrexec.
        argument=${1:-$QREXEC_SERVICE_ARGUMENT}
        \(text)
        user=$(stat -c %U /tmp/.X11-unix/X0 2>/dev/null) || exit 1
        uid=$(id -u "$user") || exit 1
        set -- --urgency=\(urgency) --expire-time=\(milliseconds) --icon=\(icon) -- "$QREXEC_REMOTE_DOMAIN" "$text"
        [ "$(id -u)" = "$uid" ] && exec notify-send "$@"
        exec sudo -u "$user" env DISPLAY=:0 DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" notify-send "$@"

        """
    }
}
