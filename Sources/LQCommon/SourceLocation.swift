/// A place in a text a reader refused: the file as the reader named it, the
/// 1-based line and the 1-based column (in bytes); each part may be unknown.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    public var column: Int?

    public init(file: String? = nil, line: Int? = nil, column: Int? = nil) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, leaving out the line and column when unknown and
    /// writing `unnamed` for a text without a file name.
    public func text(unnamed: String) -> String {
        var place = file ?? unnamed
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        return place
    }

    /// `file:line:column`, leaving out what is not known (`12:5` for a line and column alone).
    public var description: String {
        [file, line.map(String.init), column.map(String.init)].compactMap { $0 }.joined(separator: ":")
    }
}
