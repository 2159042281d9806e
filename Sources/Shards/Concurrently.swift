import Foundation

/// Runs `first` on a second thread while `second` runs on this one, and
/// returns both results (or the first error, `first`'s before `second`'s).
func concurrently<First: Sendable, Second>(
    _ first: @escaping @Sendable () throws -> First, _ second: () throws -> Second
) throws -> (First, Second) {
    let outcome = Outcome<First>()
    let thread = Thread {
        outcome.result = Result { try first() }
        outcome.done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    let secondResult = Result { try second() }
    outcome.done.wait()
    return (try outcome.result!.get(), try secondResult.get())
}

/// The other thread's result; the semaphore orders its write before the read.
private final class Outcome<Value>: @unchecked Sendable {
    var result: Result<Value, any Error>?
    let done = DispatchSemaphore(value: 0)
}
