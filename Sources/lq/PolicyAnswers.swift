import QrexecPolicy
import SystemLayer

/// What `lq policy eval` prints: one line per call, its decision as JSON or as a summary.
struct PolicyAnswers: Sendable {
    /// The bound policy, or the load error that denies every call.
    var evaluator: Result<PolicyEvaluator, PolicyError>
    var json: Bool

    /// Calls answered together: half of them on a second thread when there are at least
    /// `parallelMinimum` (docs/qrexec-policy.md, "Whole-process speed").
    static let round = 4096, parallelMinimum = 512

    /// Writes the answers to `calls` in order, in large writes; whether any was an error (or the
    /// policy failed to load).
    func write(_ calls: [Call]) -> Bool {
        var failed = false
        if case .failure = evaluator { failed = true }
        var start = calls.startIndex
        while start < calls.endIndex {
            let end = min(start + Self.round, calls.endIndex)
            let chunk = calls[start..<end]
            let parts: [([UInt8], Bool)]
            if chunk.count >= Self.parallelMinimum {
                let middle = chunk.startIndex + chunk.count / 2
                let (first, second) = concurrently({ answers(chunk[..<middle]) }, { answers(chunk[middle...]) })
                parts = [first, second]
            } else {
                parts = [answers(chunk)]
            }
            for (bytes, error) in parts {
                Terminal.write(bytes)
                failed = failed || error
            }
            start = end
        }
        return failed
    }

    /// The lines answering `calls`, and whether any was an error.
    private func answers(_ calls: ArraySlice<Call>) -> ([UInt8], Bool) {
        var output: [UInt8] = []
        output.reserveCapacity(1 << 16)
        var failed = false
        for call in calls {
            let decision: Decision
            switch evaluator {
            case .success(let evaluator): decision = evaluator.evaluate(call)
            case .failure(let error): decision = .loadFailure(error)
            }
            if case .error = decision.outcome { failed = true }
            if json { decision.appendJSON(to: &output) } else { output += decision.summary.utf8 }
            output.append(0x0A)
        }
        return (output, failed)
    }
}
