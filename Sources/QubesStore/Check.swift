import LQCommon

/// `lq store check`: qubesd's load outcome plus what qubesd silently
/// accepts but is wrong or dangerous.
public struct CheckReport: Sendable {
    /// Why qubesd would refuse the file (at most one: the load stops there).
    public var errors: [StoreFinding]
    /// What qubesd accepts but drops, changes, or should not accept.
    public var warnings: [StoreFinding]

    public init(errors: [StoreFinding] = [], warnings: [StoreFinding] = []) {
        self.errors = errors
        self.warnings = warnings
    }
}

/// The QID range reserved for qubes merged in from shards.
public let shardQIDRange = 8000...9999

public enum StoreCheck {
    /// Checks a qubes.xml document.
    public static func check(_ bytes: [UInt8], options: LoadOptions = LoadOptions()) -> CheckReport {
        do {
            return check(try Store.load(xml: bytes, options: options), bytes, limits: options.limits)
        } catch {
            return refusal(error)
        }
    }

    /// The report of a document the loader refused with `error`.
    public static func refusal(_ error: any Error) -> CheckReport {
        guard let error = error as? StoreError else {
            return CheckReport(errors: [StoreFinding(qube: nil, field: nil, value: nil, message: "\(error)")])
        }
        var message = "\(error.kind.rawValue): \(error.message)"
        if let line = error.location?.line, let column = error.location?.column {
            message = "line \(line), column \(column): " + message
        }
        return CheckReport(errors: [StoreFinding(qube: error.qube, field: error.field, value: error.value, message: message)])
    }

    /// Checks a document that loaded as `loaded`.
    public static func check(_ loaded: LoadedStore, _ bytes: [UInt8], limits: XMLReader.Limits = .store) -> CheckReport {
        let domains = loaded.store.domains
        var warnings = loaded.notes.map(\.finding)
        let noted = Set(warnings.map { NoteKey(qube: $0.qube, field: $0.field) })
        for change in changes(bytes, loaded, domains: domains, limits: limits) where !noted.contains(NoteKey(qube: change.qube, field: change.field)) {
            warnings.append(change)
        }
        warnings += findings(loaded.store, domains: domains)
        return CheckReport(errors: formatErrors(loaded), warnings: warnings)
    }

    /// A root whose children qubesd does not read (the R1-R3 formats'
    /// `<QubesVmCollection>`) is not refused: qubesd runs an empty system
    /// with only dom0, and its next save wipes the file.
    static func formatErrors(_ loaded: LoadedStore) -> [StoreFinding] {
        guard loaded.rootReadsNothing else { return [] }
        return [
            StoreFinding(
                qube: nil, field: "root", value: loaded.rootElement,
                message: "<\(loaded.rootElement)> holds no labels, pools, properties or domains (a file of Qubes R1-R3?): "
                    + "qubesd loads it as an empty system with only dom0, and its next save wipes the file")
        ]
    }

    private struct NoteKey: Hashable {
        var qube: String?
        var field: String?
    }

    /// Problems of a loaded store that qubesd does not report.
    public static func findings(_ store: Store) -> [StoreFinding] { findings(store, domains: store.domains) }

    /// `findings(store)` for a caller that has `store.domains` already.
    static func findings(_ store: Store, domains: [Domain]) -> [StoreFinding] {
        var findings: [StoreFinding] = []
        var byUUID: [String: [String]] = [:]
        for domain in domains {
            byUUID[domain.uuid, default: []].append(domain.name)
            if domain.vmClass != .adminVM, let problem = QubeName.problem(domain.name) {
                findings.append(StoreFinding(qube: domain.name, field: "name", value: domain.name, message: "invalid qube name: \(problem)"))
            }
            if shardQIDRange.contains(domain.qid) {
                findings.append(
                    StoreFinding(
                        qube: domain.name, field: "qid", value: String(domain.qid),
                        message: "qid is in the range \(shardQIDRange.lowerBound)..\(shardQIDRange.upperBound) reserved for shard qubes"))
            }
            for (name, value) in domain.features {
                if let problem = AdminAPIRules.featureProblem(name: name.value, value: value) {
                    findings.append(StoreFinding(qube: domain.name, field: "features.\(name.value)", value: value, message: problem))
                }
            }
            for tag in domain.tags where !AdminAPIRules.isValidTag(tag.value) {
                findings.append(
                    StoreFinding(qube: domain.name, field: "tags", value: tag.value, message: "tag must be non-empty and use only A-Z a-z 0-9 _ -"))
            }
            for (deviceClass, assignments) in domain.devices {
                for device in assignments where device.backendDomain == nil {
                    findings.append(
                        StoreFinding(
                            qube: domain.name, field: "devices.\(deviceClass)", value: device.port,
                            message: "device has no backend-domain; qubesd saves it as backend-domain='*' and its next load drops the assignment"))
                }
            }
            for volume in domain.volumes {
                for (field, text) in [("rw", volume.rw), ("save_on_stop", volume.saveOnStop), ("snap_on_start", volume.snapOnStart)]
                where text != "True" && text != "False" {
                    findings.append(
                        StoreFinding(
                            qube: domain.name, field: "volume \(volume.name).\(field)", value: text,
                            message: "volume flag is not True or False; qubesd keeps the text and reads any non-empty text as true"))
                }
            }
        }
        for (uuid, names) in byUUID where names.count > 1 {
            for name in names.dropFirst() {
                findings.append(
                    StoreFinding(qube: name, field: "uuid", value: uuid, message: "uuid is also used by qube '\(names[0])'; lookups by uuid find only that one"))
            }
        }
        var labelNames: [ExactString: Int] = [:]
        for label in store.sortedLabels {
            if label.color == nil {
                findings.append(StoreFinding(qube: nil, field: "label \(label.name)", value: nil, message: "label has no color; every qubesd save fails"))
            }
            if let first = labelNames[ExactString(label.name)] {
                findings.append(
                    StoreFinding(qube: nil, field: "label-\(label.index)", value: label.name, message: "label name is also used by label-\(first)"))
            } else {
                labelNames[ExactString(label.name)] = label.index
            }
        }
        return findings
    }

    /// Differences between what the file says and what qubesd keeps after loading it.
    /// A file that qubesd would save back byte for byte has none; neither has
    /// one that states the same data in the same order (tags in any order,
    /// empty device classes, other formatting), found in one pass over the
    /// lines, else over both trees; only the rest are compared by data (`DataView`).
    static func changes(_ bytes: [UInt8], _ loaded: LoadedStore, domains: [Domain], limits: XMLReader.Limits) -> [StoreFinding] {
        guard let written = try? XMLWriter.write(loaded.store, domains: domains), written != bytes,
            let input = loaded.document ?? (try? XMLReader.parse(bytes, limits: limits))
        else { return [] }
        if !input.hasDoctype && input.declaredEncoding == nil && TreeComparison.sameLines(input.bytes, written) { return [] }
        guard let saved = try? XMLReader.parse(written, limits: .store) else { return [] }
        var findings: [StoreFinding] = []
        if input.hasDoctype {
            findings.append(
                StoreFinding(qube: nil, field: "DOCTYPE", value: nil, message: "the DOCTYPE is dropped on save and its entities are replaced by their text"))
        }
        if let encoding = input.declaredEncoding, encoding.lowercased() != "utf-8" {
            findings.append(StoreFinding(qube: nil, field: "encoding", value: encoding, message: "the file is written back as UTF-8 without declaration"))
        }
        if input.root.name == "qubes" && input.root.attributes.isEmpty && TreeComparison.sameData(input.root, saved.root) {
            return findings
        }
        return findings + DataView(input.root).differences(to: DataView(saved.root))
    }
}

/// What qubesd's Admin API accepts (docs/qubes-xml.md, "Admin API checks"): stricter than what a load accepts.
public enum AdminAPIRules {
    /// Why a feature cannot be set through the Admin API (qubesd's
    /// ProtocolError message), or `nil`.
    public static func featureProblem(name: String, value: String) -> String? {
        let nameOK = !name.isEmpty && name.utf8.allSatisfy {
            (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2E
                || $0 == 0x2D
        }
        if !nameOK { return "feature name contains illegal characters" }
        if !value.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) {
            return "\(name) value contains illegal characters"
        }
        return nil
    }

    /// A tag the Admin API accepts: non-empty, `A-Z a-z 0-9 _ -`.
    public static func isValidTag(_ tag: String) -> Bool { !tag.isEmpty && ValueParsers.isValidTag(tag) }
}
