import Foundation
import QubesStore
@testable import Shards

/// Access to this target's fixtures.
enum Fixtures {
    static let root: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: root.appendingPathComponent(relative)))
    }

    static func store(_ name: String) throws -> Store {
        try Store.load(xml: bytes("stores/\(name).xml")).store
    }
}
