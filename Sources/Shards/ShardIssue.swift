import LQCommon
import QubesStore

/// A problem with a shard or a change made to it: what, in which file, on
/// which qube, in which field, with which value.
///
/// Used both as a thrown error (a shard or a qube that is refused) and as a
/// report entry (something merge or split changed or skipped).
public struct ShardIssue: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String?
    public var qube: String?
    public var field: String?
    public var value: String?
    public var message: String
    /// Line and column in `file`, when known.
    public var location: SourceLocation?

    public init(
        _ message: String, file: String? = nil, qube: String? = nil, field: String? = nil, value: String? = nil,
        location: SourceLocation? = nil
    ) {
        self.message = message
        self.file = file
        self.qube = qube
        self.field = field
        self.value = value
        self.location = location
    }

    /// An issue built from a store error (a parse or load failure).
    public init(_ error: StoreError, file: String?) {
        self.init(
            error.message, file: file ?? error.file, qube: error.qube, field: error.field, value: error.value,
            location: error.location)
    }

    public var description: String {
        var context: [String] = []
        if let qube { context.append("qube '\(qube)'") }
        if let field { context.append("field '\(field)'") }
        if let value { context.append("value '\(value)'") }
        var text = ""
        if let file { text += file + (location.map { ":\($0)" } ?? "") + ": " }
        text += message
        return context.isEmpty ? text : text + " (" + context.joined(separator: ", ") + ")"
    }

    /// The issue as a JSON object (absent fields left out).
    public var json: JSONValue {
        var object: [String: JSONValue] = ["message": .string(message)]
        if let file { object["file"] = .string(file) }
        if let qube { object["qube"] = .string(qube) }
        if let field { object["field"] = .string(field) }
        if let value { object["value"] = .string(value) }
        if let location { object["location"] = .string(location.description) }
        return .object(object)
    }
}
