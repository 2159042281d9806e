import QubesAdmin

/// The Admin API wire targets.
let wireTargets = [
    FuzzTarget(
        name: "admin-reply",
        property: "a reply that decodes encodes back to the same bytes, a refusal is an AdminError; "
            + "a request that decodes decodes the same from its encoding", run: adminReply),
    FuzzTarget(
        name: "admin-events",
        property: "an event stream gives the same events and the same refusal fed whole, byte by byte, "
            + "or in chunks the input picks; each event encodes to the bytes it came from", run: adminEvents),
]

func adminReply(_ bytes: [UInt8]) {
    do {
        let reply = try AdminReply.decode(bytes, call: "admin.vm.List")
        require(reply.encoded == bytes, "the reply does not encode back to its bytes")
    } catch {
        require(error is AdminError, "a refusal that is no AdminError: \(error)")
    }
    if let request = AdminRequest.decode(bytes) {
        let again = (try? request.encoded()).flatMap(AdminRequest.decode)
        require(again == request, "a decoded request does not decode the same from its encoding")
    }
}

/// What a decoder gives for `chunks`: the events until the first refusal, whether one came, a pending partial event.
func decode(_ chunks: [ArraySlice<UInt8>]) -> (events: [AdminEvent], refused: Bool, partial: Bool) {
    var decoder = EventDecoder(maximumEventSize: 512)
    var events: [AdminEvent] = []
    for chunk in chunks {
        do {
            events += try decoder.feed(chunk)
        } catch {
            require(error is AdminError, "a refusal that is no AdminError: \(error)")
            return (events, true, decoder.hasPartialEvent)
        }
    }
    return (events, false, decoder.hasPartialEvent)
}

func adminEvents(_ input: [UInt8]) {
    // The first byte picks the chunk sizes; the rest is the stream.
    guard let seed = input.first else { return }
    let stream = Array(input.dropFirst())
    let bytewise = decode(stream.indices.map { stream[$0...$0] })
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    var state = UInt32(seed) &+ 1
    while start < stream.count {
        state = state &* 1_103_515_245 &+ 12_345
        let length = min(stream.count - start, 1 + Int((state >> 16) % 97))
        chunks.append(stream[start..<(start + length)])
        start += length
    }
    for result in [decode([stream[...]]), decode(chunks)] {
        require(result.refused == bytewise.refused, "the refusal depends on the chunking")
        require(bytewise.events.starts(with: result.events), "the events depend on the chunking")
        if !result.refused {
            require(result.events == bytewise.events && result.partial == bytewise.partial, "the events depend on the chunking")
        }
    }
    if !bytewise.refused {
        let encoded = bytewise.events.flatMap(\.encoded)
        require(stream.starts(with: encoded), "the events do not encode to the bytes they came from")
        require(bytewise.partial == (encoded.count < stream.count), "bytes left over but no partial event")
    }
}
