// Benchmarks for lq (release build): `swift run -c release lq-bench [FIXTURE-DIR]`.
// FIXTURE-DIR holds the scaled qubes.xml stores (default: the shared fixtures).
// `lq-bench --export-policy DIR` only writes the policy benchmark set to DIR.
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--export-policy", arguments.count == 2 {
    try PolicyBenchmark.export(to: arguments[1])
} else {
    let folder = arguments.first ?? "../shared/fixtures/qubes-xml/valid"
    try storeBenchmarks(folder)
    try adminBenchmarks(folder)
    try PolicyBenchmark.run(in: temporaryDirectory())
    try shardBenchmarks(folder)
}
