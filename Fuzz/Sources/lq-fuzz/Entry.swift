import Foundation
import SystemLayer

/// One fuzz target: a name and a check of one input that traps when a property fails.
struct FuzzTarget: Sendable {
    var name: String
    /// What the target holds of every input (docs/fuzzing.md, "Targets").
    var property: String
    var run: @Sendable ([UInt8]) -> Void
}

/// Every target, by name (docs/fuzzing.md).
let targets: [FuzzTarget] = storeTargets + policyTargets + wireTargets + fileTargets + serviceTargets + guardTargets

/// The target LQ_FUZZ_TARGET names; traps with the list of names otherwise.
let selected: FuzzTarget = {
    let name = getenv("LQ_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = targets.first(where: { $0.name == name }) else {
        fatalError("set LQ_FUZZ_TARGET to one of: " + targets.map(\.name).joined(separator: " "))
    }
    return target
}()

/// Traps, naming the target and the property, when `condition` is false: libFuzzer saves the input.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("\(selected.name): property broken: \(message())") }
}

/// A file of the folder LQ_FUZZ_DATA names (Fuzz/Data in the repository), read once.
func dataFile(_ name: String) -> [UInt8] {
    let folder = getenv("LQ_FUZZ_DATA").map { String(cString: $0) } ?? "Fuzz/Data"
    do {
        return try SystemFileSystem().contents(of: folder + "/" + name)
    } catch {
        fatalError("cannot read \(folder)/\(name) (set LQ_FUZZ_DATA): \(error)")
    }
}

/// Splits an input into up to `count` parts at NUL bytes (the last part keeps the rest).
func parts(_ bytes: [UInt8], _ count: Int) -> [[UInt8]] {
    bytes.split(separator: 0, maxSplits: count - 1, omittingEmptySubsequences: false).map(Array.init)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    selected.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's driver: runs the fuzzing loop on `callback` with the command line's options (docs/fuzzing.md).
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM gives an executable its own `main`, so libFuzzer's is not linked: this one starts the driver.
@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        let status = runDriver(&argc, &argv) { data, size in
            selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
            return 0
        }
        exit(status)
    }
}
