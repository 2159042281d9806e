import Glibc

// Processes, devices and the clock: the calls of `HostSystem` that are not on a directory entry.

extension HostSystem {
    public func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    public func readPrefix(_ path: String, count: Int) throws(SystemError) -> [UInt8] {
        let fd = try retrying("open") { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) }
        defer { Glibc.close(fd) }
        return Array(try read(fd, limit: count).prefix(count))
    }

    public func mount(_ device: String, at target: String) throws(SystemError) {
        try check("mount", Glibc.mount(device, target, "ext4", UInt(MS_NOATIME), "discard"))
    }

    public func unmount(_ target: String) throws(SystemError) {
        try check("umount2", umount2(target, Int32(MNT_FORCE | MNT_DETACH)))
    }

    public func run(
        _ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int, environment: [String: String]
    ) throws(SystemError) -> ProcessOutput {
        try run(executable, arguments, input: input, outputLimit: outputLimit, passing: [:], environment: environment)
    }

    /// Runs `executable` with `arguments` (no `PATH` search; the child's `PATH` is fixed), `input` on its
    /// standard input, its standard output captured up to `outputLimit` bytes, its standard error inherited;
    /// `descriptors` maps a descriptor number of the child to an open descriptor of ours (`posix_spawn_file_actions_adddup2`);
    /// the child's environment is `PATH` (fixed) and `environment`.
    /// The child gets no other descriptor: every one above those is closed in it, whether or not it was
    /// opened with `O_CLOEXEC` (docs/system-layer.md, "Processes").
    public func run(
        _ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int, passing descriptors: [Int32: Descriptor],
        environment: [String: String] = [:]
    ) throws(SystemError) -> ProcessOutput {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        // Close-on-exec from the start: a child another thread spawns never holds these pipes open.
        try check("pipe2", Spawn.pipe2(&toChild, O_CLOEXEC))
        try check("pipe2", Spawn.pipe2(&fromChild, O_CLOEXEC))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for (child, parent) in descriptors.sorted(by: { $0.key < $1.key }) {
            posix_spawn_file_actions_adddup2(&actions, parent, child)
        }
        let passed = descriptors.keys.max() ?? 2
        for fd in 3..<max(3, passed) where descriptors[fd] == nil { posix_spawn_file_actions_addclose(&actions, fd) }
        _ = Spawn.closeFrom(&actions, max(3, passed + 1))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let variables = ["PATH=/usr/local/bin:/usr/bin:/bin"] + environment.filter { $0.key != "PATH" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let envp = variables.map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        var spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        // ETXTBSY: a just-written script is still open for writing in a child another thread forked.
        for _ in 0..<50 where spawned == ETXTBSY {
            usleep(20_000)
            spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        }
        Glibc.close(toChild[0])
        Glibc.close(fromChild[1])
        guard spawned == 0 else {
            Glibc.close(toChild[1])
            Glibc.close(fromChild[0])
            throw SystemError("posix_spawn \(executable)", spawned)
        }
        // The input is written whole, then the output read: fine while the child reads its input
        // before it prints more than a pipe holds (small inputs always; large ones to quiet children).
        let previous = signal(SIGPIPE, SIG_IGN)
        try? write(toChild[1], input)
        signal(SIGPIPE, previous)
        Glibc.close(toChild[1])
        let output = (try? read(stream: fromChild[0], limit: outputLimit)) ?? []
        Glibc.close(fromChild[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        return ProcessOutput(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output: output)
    }

    public func read(stream fd: Descriptor, limit: Int, lines: Int = .max) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var newlines = 0
        while newlines < lines {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                newlines += chunk[0..<n].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                if result.count <= limit { result.append(contentsOf: chunk[0..<min(n, limit + 1 - result.count)]) }
            } else if n == 0 {
                return result
            } else if errno != EINTR {
                throw SystemError("read", errno)
            }
        }
        return result
    }
}

/// The glibc calls the Glibc module leaves out (they need `_GNU_SOURCE`), found at run time.
private enum Spawn {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    static let pipe2Call: Pipe2 = unsafeBitCast(dlsym(nil, "pipe2")!, to: Pipe2.self)
    /// glibc 2.34 and later.
    static let closeFromCall: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) }

    static func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 { pipe2Call(fds, flags) }

    /// Closes every descriptor from `lowest` up in the child; without the glibc call, those up to the
    /// descriptor limit one by one.
    static func closeFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32) -> Int32 {
        if let closeFromCall { return closeFromCall(actions, lowest) }
        let limit = min(Int32(clamping: sysconf(Int32(_SC_OPEN_MAX))), 65536)
        for fd in lowest..<max(lowest, limit) { posix_spawn_file_actions_addclose(actions, fd) }
        return 0
    }
}
