import Foundation
import TestSupport

/// A fresh temporary folder with a copy of a store fixture.
func temporaryStore(_ fixture: String = "qubes-liteqube.xml") throws -> (directory: String, path: String) {
    let copy = try FixtureFolder.stores.copy("valid/\(fixture)")
    return (copy.deletingLastPathComponent().path, copy.path)
}
