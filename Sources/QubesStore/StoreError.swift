import LQCommon

/// Why reading, validating or writing a store failed.
///
/// `kind` is the exception class qubesd raises for the same input, so a
/// user (and a test) can tell that `lq` and qubesd agree; `message` says what
/// was wrong, and `qube`, `field` and `value` say where.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The qubesd exception class this error corresponds to.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case xmlSyntaxError = "XMLSyntaxError"
        case qubesException = "QubesException"
        case qubesValueError = "QubesValueError"
        case qubesPropertyValueError = "QubesPropertyValueError"
        case qubesLabelNotFoundError = "QubesLabelNotFoundError"
        case storagePoolException = "StoragePoolException"
        case valueError = "ValueError"
        case typeError = "TypeError"
        case attributeError = "AttributeError"
        case keyError = "KeyError"
        case indexError = "IndexError"
        case assertionError = "AssertionError"
        case notImplementedError = "NotImplementedError"
        case lookupError = "LookupError"
        case addressValueError = "AddressValueError"
        case protocolError = "ProtocolError"
        case permissionDenied = "PermissionDenied"
        case qubesNoSuchPropertyError = "QubesNoSuchPropertyError"
        case qubesVMNotFoundError = "QubesVMNotFoundError"
        case qubesVMAlreadyExistsError = "QubesVMAlreadyExistsError"
        case qubesVMInUseError = "QubesVMInUseError"
        case qubesVMNotHaltedError = "QubesVMNotHaltedError"
        case qubesVMNotStartedError = "QubesVMNotStartedError"
        case qubesInvalidTagError = "QubesInvalidTagError"
        case qubesTagNotFoundError = "QubesTagNotFoundError"
        case qubesFeatureNotFoundError = "QubesFeatureNotFoundError"
        case deviceAlreadyAssigned = "DeviceAlreadyAssigned"
        case deviceNotAssigned = "DeviceNotAssigned"
        case qubesUnrecognizedDeviceAssignmentMode = "QubesUnrecognizedDeviceAssignmentMode"
        /// An operating-system failure (open, lock, write, rename, fsync).
        case osError = "OSError"
        /// A file qubesd reads is missing (the callback pool's configuration).
        case fileNotFoundError = "FileNotFoundError"

        /// Whether qubesd's class derives from `QubesException` (which some
        /// of its loops catch and log instead of failing).
        public var isQubesException: Bool {
            rawValue.hasPrefix("Qubes") || [.storagePoolException, .deviceAlreadyAssigned, .deviceNotAssigned].contains(self)
        }
    }

    public var kind: Kind
    public var message: String
    /// The file the error is about, when known.
    public var file: String?
    /// Line and column in `file`, for syntax errors.
    public var location: SourceLocation?
    public var qube: String?
    public var field: String?
    public var value: String?

    public init(
        _ kind: Kind, _ message: String, qube: String? = nil, field: String? = nil, value: String? = nil,
        location: SourceLocation? = nil, file: String? = nil
    ) {
        self.kind = kind
        self.message = message
        self.qube = qube
        self.field = field
        self.value = value
        self.location = location
        self.file = file
    }

    /// The error with `file` filled in, unless it already names one.
    public func inFile(_ path: String) -> StoreError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    public var description: String {
        var text = ""
        if let file { text += file + ":" }
        if let location { text += "\(location):" }
        if !text.isEmpty { text += " " }
        text += "\(kind.rawValue): \(message)"
        var context: [String] = []
        if let qube { context.append("qube '\(qube)'") }
        if let field { context.append("field '\(field)'") }
        if let value { context.append("value '\(value)'") }
        if !context.isEmpty { text += " (" + context.joined(separator: ", ") + ")" }
        return text
    }
}
