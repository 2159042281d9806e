// qrexec policy suite: a generated policy of 50 files x 40 rules, a system of
// 1000 qubes in 20 tag groups, and 3000 random calls (fixed seed). Reports
// load time (from memory and from disk) and evaluations per second, against
// the reference Python evaluator's 320 calls per second.
import Glibc
import QrexecPolicy
import QubesStore

enum PolicyBenchmark {
    static let qubeCount = 1000
    static let groups = 20
    static let templates = 20
    static let services = (0..<120).map { "bench.Service\($0)" }

    static func name(_ index: Int) -> String { "q\(index)" }

    /// A uuid of its own for qube `index` (the reference's answer to an allow names it).
    static func uuid(_ index: Int) -> String {
        let digits = String(index + 1)
        return "00000000-0000-4000-8000-" + String(repeating: "0", count: 12 - digits.count) + digits
    }

    static func system(_ random: inout SplitMix64) throws -> SystemInfo {
        var qubes = [QrexecPolicy.QubeInfo(name: "dom0", type: "AdminVM", defaultDispVM: name(0), powerState: "Running")]
        for index in 0..<qubeCount {
            let type = index < templates ? "AppVM" : ["AppVM", "AppVM", "AppVM", "TemplateVM", "DispVM"][index % 5]
            qubes.append(QrexecPolicy.QubeInfo(
                name: name(index), type: type, tags: ["group-\(index % groups)", "t\(index % 7)"],
                templateForDispVMs: index < templates, defaultDispVM: random.next() % 4 == 0 ? nil : name(Int(random.next() % UInt64(templates))),
                powerState: random.next() % 2 == 0 ? "Running" : "Halted", uuid: uuid(index), isInternal: index == 1))
        }
        return try SystemInfo(qubes: qubes)
    }

    static func token(_ random: inout SplitMix64, source: Bool) -> String {
        switch random.next() % (source ? 4 : 7) {
        case 0: return "@anyvm"
        case 1: return "@tag:group-\(random.next() % UInt64(groups))"
        case 2: return name(Int(random.next() % UInt64(qubeCount)))
        case 3: return source ? "@type:AppVM" : "@default"
        case 4: return "@dispvm"
        case 5: return "@dispvm:" + name(Int(random.next() % UInt64(templates)))
        default: return "@dispvm:@tag:group-\(random.next() % UInt64(groups))"
        }
    }

    static func files(_ random: inout SplitMix64) -> [String: String] {
        var files: [String: String] = [:]
        for file in 0..<50 {
            var lines = ["# generated benchmark file \(file)"]
            for _ in 0..<40 {
                let service = services[Int(random.next() % UInt64(services.count))]
                let argument = random.next() % 4 == 0 ? "+arg\(random.next() % 3)" : "*"
                let source = token(&random, source: true)
                let target = token(&random, source: false)
                var action = ["allow", "ask", "deny"][Int(random.next() % 3)]
                if target == "@default" && action == "allow" { action = "allow target=\(name(Int(random.next() % UInt64(qubeCount))))" }
                if action == "ask" && random.next() % 3 == 0 { action += " default_target=\(name(Int(random.next() % UInt64(qubeCount))))" }
                lines.append("\(service) \(argument) \(source) \(target) \(action)")
            }
            files["/bench/\(10 + file)-bench.policy"] = lines.joined(separator: "\n") + "\n"
        }
        return files
    }

    static func calls(_ random: inout SplitMix64) -> [Call] {
        (0..<3000).map { _ in
            let service = random.next() % 10 == 0 ? "bench.Unknown" : services[Int(random.next() % UInt64(services.count))]
            let target: String
            switch random.next() % 6 {
            case 0: target = ""
            case 1: target = "@dispvm"
            case 2: target = "@dispvm:" + name(Int(random.next() % UInt64(templates)))
            default: target = name(Int(random.next() % UInt64(qubeCount)))
            }
            return Call(service: service, argument: random.next() % 4 == 0 ? "arg\(random.next() % 3)" : "",
                        source: name(Int(random.next() % UInt64(qubeCount))), target: target)
        }
    }

    /// Runs the suite; the on-disk copy of the policy goes in a folder under `folder`.
    static func run(in folder: String) throws {
        var random = SplitMix64(seed: 2026)
        let system = try system(&random)
        let files = files(&random)
        let calls = calls(&random)
        let memory = MemoryPolicyFiles(files)
        let loader = PolicyLoader(directories: ["/bench"], legacyDirectory: "/none", fileSystem: memory)

        let directory = folder + "/policy.d"
        mkdir(directory, 0o700)
        for (path, text) in files {
            try SystemPolicyFiles().replace(String(path.dropFirst("/bench/".count)), in: directory, with: Array(text.utf8))
        }
        defer {
            for path in files.keys { unlink(directory + "/" + path.dropFirst("/bench/".count)) }
            rmdir(directory)
        }
        let diskLoader = PolicyLoader(directories: [directory], legacyDirectory: "/none")

        let policy = try loader.policy()
        precondition(policy.rules.count == 2000)
        let loadMemory = try measure(30) { _ = PolicyEvaluator(policy: try loader.policy(), system: system) }
        let loadDisk = try measure(30) { _ = PolicyEvaluator(policy: try diskLoader.policy(), system: system) }
        let evaluator = PolicyEvaluator(policy: policy, system: system)
        var counts: [String: Int] = [:]
        for call in calls { counts[evaluator.evaluate(call).name, default: 0] += 1 }
        let evaluate = measure(15) { for call in calls { _ = evaluator.evaluate(call) } }
        let perSecond = Double(calls.count) / (evaluate.median / 1e3)
        print("")
        print("qrexec policy: 50 files x 40 rules, \(qubeCount) qubes in \(groups) tag groups, \(calls.count) calls "
            + "(\(counts.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))")
        print("  load + bind, from memory ms (min/med): \(format(loadMemory.min)) / \(format(loadMemory.median))")
        print("  load + bind, from disk ms (min/med):   \(format(loadDisk.min)) / \(format(loadDisk.median))")
        print("  evaluate \(calls.count) calls ms (min/med): \(format(evaluate.min)) / \(format(evaluate.median))")
        print("  evaluations per second (median): \(Int(perSecond)), \(format(perSecond / 320))x the reference 320/s")
    }
}
