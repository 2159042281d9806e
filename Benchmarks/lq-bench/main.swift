// Benchmarks for lq (release build): `swift run -c release lq-bench [FIXTURE-DIR]`.
// FIXTURE-DIR holds the scaled qubes.xml stores (default: the shared fixtures).
let folder = CommandLine.arguments.dropFirst().first ?? "../shared/fixtures/qubes-xml/valid"

try storeBenchmarks(folder)
try adminBenchmarks(folder)
try PolicyBenchmark.run(in: temporaryDirectory())
try shardBenchmarks(folder)
