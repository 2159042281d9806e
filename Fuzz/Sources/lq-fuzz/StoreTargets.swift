import QubesStore
import Shards

/// The qubes.xml and shard file targets.
let storeTargets = [
    FuzzTarget(
        name: "qubes-xml",
        property: "load (untrusted limits) → save → load → save is stable, but where qubesd's is not (a device "
            + "without backend, a volume of size 0), which the check names, and the save after is; a refusal is a StoreError",
        run: qubesXML),
    FuzzTarget(
        name: "shard",
        property: "parse → canonical bytes → parse gives the same bytes; merging into a fixed main store "
            + "leaves every main qube's bytes unchanged; a refusal is a ShardIssue", run: shardFile),
]

/// Loads as lq does, with one fixed uuid for a qube without one (runs must be repeatable).
func load(_ bytes: [UInt8], limits: XMLReader.Limits) throws -> LoadedStore {
    try Store.load(
        xml: bytes,
        options: LoadOptions(limits: limits, randomUUID: { "7c3c2a8e-0000-4000-8000-000000000001" }, hasCallbackConfiguration: false))
}

/// Whether a qube of `store` has a device without backend: qubesd saves it as `*` and drops it next time.
func hasDeviceWithoutBackend(_ store: Store) -> Bool {
    store.domains.contains { domain in domain.devices.values.contains { $0.contains { $0.backendDomain == nil } } }
}

func qubesXML(_ bytes: [UInt8]) {
    let first: LoadedStore
    do {
        first = try load(bytes, limits: .untrusted)
    } catch {
        require(error is StoreError, "a refusal that is no StoreError: \(type(of: error)) \(error)")
        return
    }
    let report = StoreCheck.check(first, bytes, limits: .untrusted)
    let saved: [UInt8]
    do {
        saved = try XMLWriter.write(first.store)
    } catch {
        require(error is StoreError, "a save failure that is no StoreError: \(error)")
        return
    }
    let resaved: [UInt8]
    do {
        resaved = try XMLWriter.write(try load(saved, limits: .store).store)
    } catch {
        require(false, "a saved store does not load or save again: \(error)")
        return
    }
    if hasDeviceWithoutBackend(first.store) {
        require(report.warnings.contains { $0.message.contains("next load drops") }, "no warning for a device without backend")
    }
    guard resaved != saved else { return }
    // Where qubesd's own save is no fixed point (docs/qubes-xml.md): a device without backend is saved as
    // `*` and dropped next time; a volume size of 0 is not saved and the next load gives the default.
    let zeroSize = report.warnings.contains { $0.field.map { $0.hasPrefix("volume ") && $0.hasSuffix(".size") } ?? false }
    require(hasDeviceWithoutBackend(first.store) || zeroSize, "the second save differs from the first")
    let third = try? XMLWriter.write(try load(resaved, limits: .store).store)
    require(third == resaved, "the third save differs from the second")
}

/// The main store shards merge into (Fuzz/Data/main.xml) and each qube's bytes.
let mainStore: (store: Store, qubes: [String: [UInt8]]) = {
    do {
        let store = try load(dataFile("main.xml"), limits: .store).store
        var qubes: [String: [UInt8]] = [:]
        for domain in store.domains { qubes[domain.name] = try domainBytes(domain) }
        return (store, qubes)
    } catch {
        fatalError("Fuzz/Data/main.xml does not load: \(error)")
    }
}()

func domainBytes(_ domain: Domain) throws -> [UInt8] {
    var output = XMLOutput()
    try XMLWriter.write(domain, into: &output)
    return output.bytes
}

func shardFile(_ bytes: [UInt8]) {
    let path = "/shards/fuzz/domains.xml"
    let shard: ShardFile
    do {
        shard = try ShardFile.parse(bytes, file: path)
    } catch {
        require(error is ShardIssue, "a refusal that is no ShardIssue: \(type(of: error)) \(error)")
        return
    }
    do {
        let canonical = try shard.bytes()
        let again = try ShardFile.parse(canonical, file: path)
        let reread = try again.bytes()
        require(reread == canonical, "the canonical bytes are not a fixed point")
        require(again.domains.map(\.name).sorted() == shard.domains.map(\.name).sorted(), "the qubes changed")
    } catch {
        require(false, "the canonical bytes of a parsed shard do not parse: \(error)")
    }
    let root = "/shards/" + shard.name
    let source = ShardSource(
        root: root, shard: .success(Shard(root: root, documents: [ShardDocument(path: root + "/domains.xml", file: shard, bytes: bytes)])))
    do {
        let merged = try ShardMerge.merge(main: mainStore.store, shards: [source], options: MergeOptions(random: { $0.lowerBound }))
        for (name, original) in mainStore.qubes {
            guard let domain = merged.store[name] else { return require(false, "main qube \(name) is gone") }
            require((try? domainBytes(domain)) == original, "main qube \(name) changed")
        }
    } catch {
        require(error is ShardIssue, "a merge failure that is no ShardIssue: \(error)")
    }
}
