import LQCommon

/// Why a policy file, a system description or a call was refused, and where.
///
/// Any such error in a loaded file makes dom0 deny every call, so the loader
/// reports it as a value with the file, the 1-based line and column, the
/// offending text and what was expected there.
public struct PolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The closed set of failures.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A line that is not valid policy syntax.
        case syntax
        /// A `.policy` file name with characters outside `0-9 a-z _ . -`.
        case invalidFileName
        /// `!include` of something that is not a file, `!include-dir` of something that is not a directory,
        /// `!compat-4.0` without its legacy directory.
        case missingInclude
        /// An `!include` or `!include-service` of a file already being loaded.
        case includeCycle
        /// A file, line, include depth or file count over the loader's limits.
        case limit
        /// A file that could not be read, or is not UTF-8.
        case unreadable
        /// A system description (GetSystemInfo JSON) or call list that is not what was expected.
        case invalidInput
    }

    public var code: Code
    /// What was wrong, naming the offending value.
    public var message: String
    /// The file as the loader named it, the line (`nil` for the whole file) and the column of the offending field.
    public var location: SourceLocation?
    /// What was expected instead, when that can be said.
    public var expected: String?

    public init(_ code: Code, _ message: String, file: String? = nil, line: Int? = nil, column: Int? = nil,
                expected: String? = nil) {
        let location = SourceLocation(file: file, line: line, column: column)
        self.init(code, message, at: location == SourceLocation() ? nil : location, expected: expected)
    }

    public init(_ code: Code, _ message: String, at location: SourceLocation?, expected: String? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.expected = expected
    }

    /// `file:line:column: message (expected …)`.
    public var description: String {
        let place = (location ?? SourceLocation()).text(unnamed: "<policy>")
        return "\(place): \(message)" + (expected.map { " (expected \($0))" } ?? "")
    }
}

extension JSONReader {
    /// The value of `bytes`; a refusal is `PolicyError(.invalidInput)` with its line and column.
    static func policyInput(_ bytes: [UInt8], file: String?) throws(PolicyError) -> JSONValue {
        do {
            return try parse(bytes, file: file)
        } catch {
            throw PolicyError(.invalidInput, error.message, at: error.location, expected: error.expected)
        }
    }
}
