import Glibc

/// Runs `first` on a second thread while `second` runs on this one, and
/// returns both results, or the first error: `first`'s before `second`'s, as
/// if they had run one after the other (docs/system-layer.md, "Threads").
/// Where no thread can be started, `first` runs on this one.
public func concurrently<First: Sendable, Second, Failure: Error>(
    _ first: @escaping @Sendable () throws(Failure) -> First, _ second: () throws(Failure) -> Second
) throws(Failure) -> (First, Second) {
    let outcome = Outcome<First, Failure>()
    let job = Job { outcome.result = Result { () throws(Failure) in try first() } }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setstacksize(&attributes, 8 << 20)
    var thread = pthread_t()
    let context = Unmanaged.passRetained(job)
    let started = pthread_create(&thread, &attributes, runJob, context.toOpaque()) == 0
    pthread_attr_destroy(&attributes)
    if !started {
        context.release()
        job.body()
    }
    let secondResult = Result { () throws(Failure) in try second() }
    if started { pthread_join(thread, nil) }
    return (try outcome.result!.get(), try secondResult.get())
}

/// The other thread's work, passed to it as one retained reference.
private final class Job: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

private func runJob(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<Job>.fromOpaque(context!).takeRetainedValue().body()
    return nil
}

/// The other thread's result; `pthread_join` orders its write before the read.
private final class Outcome<Value, Failure: Error>: @unchecked Sendable {
    var result: Result<Value, Failure>?
}
