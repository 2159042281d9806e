extension Catalog {
    /// dom0's notification services the service qubes call (spec §4.1
    /// `liteqube.Message`, `liteqube.Error`). The argument is data: qrexec
    /// already limited it to `[A-Za-z0-9_.+-]`, `_` stands for a space, and it
    /// reaches `notify-send` as one argv entry, never through a shell string.
    /// The desktop user is the owner of the X display, not a fixed name.
    static let dom0Services: [(name: String, content: String)] = [
        ("liteqube.Message", notification(urgency: "normal", milliseconds: 2000, icon: "dialog-information")),
        ("liteqube.Error", notification(urgency: "critical", milliseconds: 5000, icon: "dialog-error")),
    ]

    private static func notification(urgency: String, milliseconds: Int, icon: String) -> String {
        """
        #!/bin/sh
        # Liteqube (dom0): a notification from a service qube; the caller is named by qrexec.
        text=$(printf '%s' "${1:-$QREXEC_SERVICE_ARGUMENT}" | tr '_' ' ')
        user=$(stat -c %U /tmp/.X11-unix/X0 2>/dev/null) || exit 1
        uid=$(id -u "$user") || exit 1
        set -- --urgency=\(urgency) --expire-time=\(milliseconds) --icon=\(icon) -- "$QREXEC_REMOTE_DOMAIN" "$text"
        [ "$(id -u)" = "$uid" ] && exec notify-send "$@"
        exec sudo -u "$user" env DISPLAY=:0 DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" notify-send "$@"

        """
    }
}
