import QubesStore

/// One file of a shard: its path and content.
public struct ShardDocument: Sendable {
    /// The file's path (root folder + relative path), as given.
    public var path: String
    public var file: ShardFile
    /// The bytes read (what split keeps as `domains.xml.prev`).
    public var bytes: [UInt8]

    public init(path: String, file: ShardFile, bytes: [UInt8]) {
        self.path = path
        self.file = file
        self.bytes = bytes
    }
}

/// A shard: every `domains.xml` under one root folder, the root file first.
public struct Shard: Sendable {
    public var root: String
    /// The files, the root's own `domains.xml` first (when present).
    public var documents: [ShardDocument]

    public init(root: String, documents: [ShardDocument]) {
        self.root = root
        self.documents = documents
    }

    /// The shard's name.
    public var name: String { documents.first?.file.name ?? "" }

    /// The shard's qubes with the index of the file each comes from.
    public var domains: [(document: Int, domain: Domain)] {
        documents.indices.flatMap { index in documents[index].file.domains.map { (index, $0) } }
    }

    /// The pools every file declares.
    public var pools: [Pool] { documents.flatMap(\.file.pools) }

    /// Checks that every file names the same shard.
    public func validated() throws -> Shard {
        for document in documents where document.file.name != name {
            throw ShardIssue(
                "the file names another shard than the root file ('\(name)')", file: document.path, field: "name",
                value: document.file.name)
        }
        return self
    }
}

/// A shard root as given on the command line, read or failed.
public struct ShardSource: Sendable {
    public var root: String
    public var shard: Result<Shard, ShardIssue>

    public init(root: String, shard: Result<Shard, ShardIssue>) {
        self.root = root
        self.shard = shard
    }
}
