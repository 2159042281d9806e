import SystemLayer

/// A store loaded from a file that remembers which version of the file it
/// came from, so saving it over someone else's change is refused (as qubesd
/// refuses: "Someone else modified qubes.xml in the meantime").
public struct StoreDocument: Sendable {
    public var store: Store
    /// What qubesd would log while loading it.
    public let notes: [LoadNote]
    public let file: StoreFile
    public private(set) var stamp: FileStamp

    /// Reads and loads the file under a shared lock.
    public static func open(_ file: StoreFile, options: LoadOptions = LoadOptions()) throws -> StoreDocument {
        let (bytes, stamp) = try file.read()
        do {
            let loaded = try Store.load(xml: bytes, options: options)
            return StoreDocument(store: loaded.store, notes: loaded.notes, file: file, stamp: stamp)
        } catch let error as StoreError {
            throw error.inFile(file.path)
        }
    }

    /// Writes the store back atomically under the exclusive lock, if the
    /// file is still the version that was loaded.
    public mutating func save() throws {
        let bytes = try XMLWriter.write(store)
        stamp = try file.replace(with: bytes, expecting: stamp)
    }
}
