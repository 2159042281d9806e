import QubesStore
import SystemLayer

extension ShardPortable {
    /// Imports the exported shard in `folder`, untrusted, as the new shard folder `root` of this machine.
    ///
    /// The manifest and `domains.xml` are read without following a symlink and checked: the shard's
    /// pools must be exactly the manifest's, each in `pools/<name>`. Merge then runs against `main`
    /// with `options` (the merge rules: sanitizing, recovery, name conflicts; labels and templates by
    /// name), before anything is written; a shard it refuses whole is refused. Then every volume the
    /// manifest lists is copied below `root`, its size and sha256 checked on the way, and last the shard
    /// file, its pools' `dir_path` below `root`. Files the manifest does not list are not copied.
    /// Any failure removes what was written. `main` is only read.
    /// - Returns: the report, with what merge would withhold, recover or skip.
    /// - Throws: `ShardIssue` naming the file, field and value refused.
    public static func importShard(from folder: String, to root: String, main: Store, options: MergeOptions) throws -> PortableReport {
        guard root.hasPrefix("/"), !root.split(separator: "/").contains("..") else {
            throw ShardIssue("the new shard folder must be an absolute path without ..", field: "pool-dir", value: root)
        }
        let manifestPath = folder + "/" + ShardManifest.fileName
        let manifest = try ShardManifest.parse(try readBeneath(folder, ShardManifest.fileName, limit: ShardManifest.maxSize), file: manifestPath)
        let filePath = folder + "/" + ShardFolder.fileName
        let file = try ShardFile.parse(try readBeneath(folder, ShardFolder.fileName, limit: ShardFolder.maxScannedSize), file: filePath)
        guard file.name == manifest.shard else {
            throw ShardIssue("the shard file names another shard than the manifest", file: filePath, field: "name", value: file.name)
        }
        var pools: [Pool] = []
        for pool in file.pools {
            guard pool.driver == "file-reflink" || pool.driver == "file", let relative = manifest.pools[pool.name],
                pool[attribute: "dir_path"] == relative
            else {
                throw ShardIssue("a pool must be a file or file-reflink pool in the manifest's folder", file: filePath, field: "pool", value: pool.name)
            }
            pools.append(rewritten(pool, dirPath: root + "/" + relative))
        }
        guard Set(pools.map(\.name)) == Set(manifest.pools.keys), pools.count == manifest.pools.count else {
            throw ShardIssue("the manifest lists other pools than the shard file", file: manifestPath, field: "pools")
        }
        var imported = file
        imported.pools = pools
        let bytes = try imported.bytes()
        let document = ShardDocument(path: root + "/" + ShardFolder.fileName, file: try ShardFile.parse(bytes, file: root), bytes: bytes)
        let source = ShardSource(root: root, shard: .success(Shard(root: root, documents: [document])))
        let check = try ShardMerge.merge(main: main, shards: [source], options: options).report.shards[0]
        if let error = check.error { throw error }

        try requireEmpty(root)
        let files = SystemFileSystem()
        let existed = try files.info(of: root) != nil
        do {
            for volume in manifest.volumes {
                let components = volume.path.split(separator: "/").map(String.init)
                _ = try copy(from: folder, components, to: root + "/" + volume.path, listedAs: volume.path, expecting: volume)
            }
            for relative in manifest.pools.values { try files.makeDirectories(root + "/" + relative) }
            try write(bytes, to: document.path)
        } catch {
            try? files.removeTree(root)
            if existed { try? files.makeDirectories(root) }
            throw error
        }
        let listed = Set(manifest.volumes.map(\.path) + [ShardManifest.fileName, ShardFolder.fileName])
        let ignored = (try? entries(below: folder))?.map { $0.components.joined(separator: "/") }.filter { !listed.contains($0) } ?? []
        return PortableReport(root: root, manifest: manifest, ignored: ignored, merge: check)
    }

    /// The bytes of the file `name` in `folder`, read without following a symlink, at most `limit`.
    static func readBeneath(_ folder: String, _ name: String, limit: Int) throws -> [UInt8] {
        let host = HostSystem()
        do {
            let fd = try host.openBeneath(folder, [Array(name.utf8)])
            defer { host.close(fd) }
            let bytes = try host.read(fd, limit: limit)
            guard bytes.count <= limit else { throw ShardIssue("larger than \(limit) bytes", file: folder + "/" + name) }
            return bytes
        } catch let error as SystemError {
            throw ShardIssue("cannot be read as a file without following a symlink: \(error)", file: folder + "/" + name)
        }
    }
}
