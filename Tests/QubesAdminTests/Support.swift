import Foundation

/// A fresh temporary folder with a copy of a store fixture.
func temporaryStore(_ fixture: String = "qubes-liteqube.xml") throws -> (directory: String, path: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lq-admin-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("QubesStoreTests/Fixtures/valid/\(fixture)")
    let path = directory + "/qubes.xml"
    try FileManager.default.copyItem(atPath: source.path, toPath: path)
    return (directory, path)
}
