import LQCommon
import QubesStore

/// The decision for one service over every (source, target) pair of a system.
public struct PolicyMatrix: Sendable {
    /// The service, with `+argument` when one was given.
    public let service: String
    public let sources: [String]
    public let targets: [String]
    /// `cells[row][column]` decides `sources[row]` → `targets[column]`.
    public let cells: [[Decision]]

    /// Every qube as a source; every qube, then `@default` and `@dispvm`, as a target.
    public init(_ evaluator: PolicyEvaluator, service: String) {
        let names = evaluator.system.qubes.map(\.name)
        self.service = service
        self.sources = names
        self.targets = names + ["@default", "@dispvm"]
        cells = names.map { source in
            (names + ["@default", "@dispvm"]).map { target in
                evaluator.evaluate(Call(serviceAndArgument: service, source: source, target: target))
            }
        }
    }

    /// The decision for `source` → `target`, if both are in the matrix.
    public subscript(source: String, target: String) -> Decision? {
        guard let row = sources.firstIndex(where: { $0.isBytes(source) }),
              let column = targets.firstIndex(where: { $0.isBytes(target) }) else { return nil }
        return cells[row][column]
    }

    /// `{"service", "cells": [{"source", "target", …decision}]}`.
    public var json: JSONValue {
        var items: [JSONValue] = []
        for (row, source) in sources.enumerated() {
            for (column, target) in targets.enumerated() {
                guard case .members(var members) = cells[row][column].json else { continue }
                members.append(JSONValue.Member("source", .string(source)))
                members.append(JSONValue.Member("call_target", .string(target)))
                items.append(.members(members))
            }
        }
        return .object(["service": .string(service), "cells": .array(items)])
    }
}
