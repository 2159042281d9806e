import SystemLayer

extension Applier {
    /// Runs `body` (plan and apply, or destroy) holding the exclusive lock of the journal, the file
    /// `<journal>.lock`, so two runs on one journal and store go one after the other and neither plans from
    /// what the other is changing (docs/crash-safety.md, "Concurrency"). When another run holds the lock,
    /// `waiting` is called with the lock's path, then the lock is waited for.
    public func exclusively<Result>(waiting: (String) throws -> Void, _ body: () throws -> Result) throws -> Result {
        let files = SystemFileSystem()
        let path = journalFile.path + ".lock"
        let fd: Int32
        do {
            fd = try files.holdLock(path) { try waiting(path) }
        } catch let error as ProvisioningError {
            throw error
        } catch {
            throw ProvisioningError(.ioFailure, "cannot lock the journal", path: path, cause: error)
        }
        defer { files.close(fd) }
        return try body()
    }
}
