// A stdio child: posix_spawn in its own process group, CLOEXEC pipes, bufferevents on the loop.
//
// Spawn recipe (libevent-notes P2–P5): default dispositions for PIPE/CHLD/TERM/INT/HUP, an empty signal
// mask, a new process group (so killpg reaches grandchildren), pipe2(O_CLOEXEC), non-blocking only on our
// ends. stdout is framed into lines with a maximum size; stderr is drained line by line so a chatty child
// never blocks on a full pipe.

internal import CLibEvent
internal import SwitchyardCore
#if canImport(Glibc)
    internal import Glibc
#endif

package struct SpawnError: Error, CustomStringConvertible {
    package var command: String
    package var errno: Int32
    package var description: String { "\(command): \(String(cString: strerror(errno)))" }
}

package final class ChildProcess {
    package let pid: Int32
    package let maxLine: Int
    private var stdinEv: OpaquePointer?
    private let loop: EventLoop
    /// stdout is read directly (an EV_READ|EV_PERSIST event and read() into reserved evbuffer space):
    /// a bufferevent asked FIONREAD before every read, one ioctl per answer.
    private var stdoutFd: Int32 = -1
    private var stdoutWatch: OpaquePointer?
    private let stdoutBuf: OpaquePointer = evbuffer_new()
    private var stderrEv: OpaquePointer?
    private var closeStdinWhenDrained = false

    /// One complete stdout line (borrowed bytes, valid during the call).
    package var onLine: (UnsafeRawBufferPointer) -> Void = { _ in }
    /// One stderr line (borrowed bytes, truncated to 4 KiB).
    package var onStderrLine: (UnsafeRawBufferPointer) -> Void = { _ in }
    /// stdout reached EOF, failed, or a line exceeded `maxLine` (`lineTooLong` true).
    package var onStdoutClosed: (_ lineTooLong: Bool) -> Void = { _ in }
    /// Cleared when stdout ends, fails or overflows; reading stops then (the pipe would stay readable at EOF).
    package private(set) var stdoutOpen = true {
        didSet { if !stdoutOpen, let w = stdoutWatch { event_del(w) } }
    }

    /// Spawns `command` (searched in PATH) with `args`, exactly `env`, and `cwd`. With a `launcher` (this
    /// binary), the child first arms a parent-death signal, so it dies with the gateway even on SIGKILL.
    /// `batchScheduling` starts it under SCHED_BATCH (no wake-up preemption of the gateway).
    package init(
        loop: EventLoop, command: String, args: [String], env: [String], cwd: String?, maxLine: Int, launcher: String? = nil,
        batchScheduling: Bool = false
    ) throws(SpawnError) {
        self.maxLine = maxLine
        self.loop = loop
        // Resolve the program here so "not found" / "permission denied" stay precise with a launcher.
        let path = env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/bin:/usr/bin:/bin"
        let program = try ChildProcess.resolve(command, path: path, cwd: cwd)
        // posix_spawnattr_setschedpolicy accepts only OTHER/FIFO/RR, so the launcher sets SCHED_BATCH itself.
        let parent = String(getpid()) + (batchScheduling ? ChildLauncher.batchSuffix : "")
        let argvStrings = launcher.map { [$0, ChildLauncher.verb, parent, program, command] + args } ?? ([command] + args)
        let file = launcher ?? program
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        func closeAll() { for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) } }
        guard pipe2(&inPipe, O_CLOEXEC) == 0, pipe2(&outPipe, O_CLOEXEC) == 0, pipe2(&errPipe, O_CLOEXEC) == 0 else {
            let e = sy_errno()
            closeAll()
            throw SpawnError(command: command, errno: e)
        }
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_adddup2(&fa, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&fa, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&fa, errPipe[1], 2)
        if let cwd { posix_spawn_file_actions_addchdir_np(&fa, cwd) }
        // Safety net: nothing but 0/1/2 crosses into the child, whatever forgot CLOEXEC (P3).
        posix_spawn_file_actions_addclosefrom_np(&fa, 3)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv: [UnsafeMutablePointer<CChar>?] = argvStrings.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var childPid: pid_t = 0
        // glibc's posix_spawnp reports exec failures (ENOENT, EACCES) as its return value.
        let rc = posix_spawn(&childPid, file, &fa, &attr, argv, envp)
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(command: command, errno: rc)
        }
        pid = childPid
        for fd in [inPipe[1], outPipe[0], errPipe[0]] { evutil_make_socket_nonblocking(fd) }
        let opts = Int32(BEV_OPT_CLOSE_ON_FREE.rawValue)
        stdinEv = bufferevent_socket_new(loop.base, inPipe[1], opts)
        stdoutFd = outPipe[0]
        stderrEv = bufferevent_socket_new(loop.base, errPipe[0], opts)
        let me = Unmanaged.passUnretained(self).toOpaque()
        bufferevent_setcb(
            stdinEv, nil, { _, arg in Unmanaged<ChildProcess>.fromOpaque(arg!).takeUnretainedValue().stdinDrained() },
            { _, _, arg in Unmanaged<ChildProcess>.fromOpaque(arg!).takeUnretainedValue().stdinFailed() }, me)
        stdoutWatch = event_new(
            loop.base, stdoutFd, Int16(EV_READ | EV_PERSIST),
            { _, _, arg in Unmanaged<ChildProcess>.fromOpaque(arg!).takeUnretainedValue().stdoutReadable() }, me)
        bufferevent_setcb(
            stderrEv, { _, arg in Unmanaged<ChildProcess>.fromOpaque(arg!).takeUnretainedValue().stderrReadable(final: false) }, nil,
            { _, _, arg in Unmanaged<ChildProcess>.fromOpaque(arg!).takeUnretainedValue().stderrClosed() }, me)
        // stdout never holds more than one line cap (readStdout); stderr stops reading above the mark.
        bufferevent_setwatermark(stderrEv, Int16(EV_READ), 0, 64 << 10)
        event_add(stdoutWatch, nil)
        bufferevent_enable(stderrEv, Int16(EV_READ))
        bufferevent_enable(stdinEv, Int16(EV_WRITE))
    }

    /// Finds `command` like execvp would: as given when it has a slash, else in `path`.
    static func resolve(_ command: String, path: String, cwd: String?) throws(SpawnError) -> String {
        if command.contains("/") {
            let full = command.hasPrefix("/") || cwd == nil ? command : cwd! + "/" + command
            guard access(full, X_OK) == 0 else { throw SpawnError(command: command, errno: sy_errno()) }
            return full
        }
        var denied = false
        for dir in path.split(separator: ":") {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + command
            if access(candidate, X_OK) == 0 {
                var st = stat()
                if stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { return candidate }
            } else if sy_errno() == EACCES {
                denied = true
            }
        }
        throw SpawnError(command: command, errno: denied ? EACCES : ENOENT)
    }

    /// Bytes queued for the child's stdin and not yet written.
    package var stdinBacklog: Int {
        guard let e = stdinEv, let out = bufferevent_get_output(e) else { return 0 }
        return evbuffer_get_length(out)
    }

    /// Writes bytes to stdin (moved from `data`). With nothing queued the bytes go out at once, saving the
    /// EV_WRITE registration and a loop turn per request; whatever the pipe does not take is queued.
    package func write(_ data: OutBuffer) {
        guard let e = stdinEv, !closeStdinWhenDrained else { return }
        if let out = bufferevent_get_output(e), evbuffer_get_length(out) == 0 {
            if evbuffer_write(data.buf, bufferevent_getfd(e)) < 0 {
                let err = sy_errno()
                if err != EAGAIN && err != EINTR {
                    data.clear()  // the child is gone (EPIPE); its exit settles what was in flight
                    return
                }
            }
            if evbuffer_get_length(data.buf) == 0 { return }
        }
        bufferevent_write_buffer(e, data.buf)
    }

    /// Closes stdin once queued bytes are written (the polite end of a stdio server, S-05).
    package func closeStdin() {
        closeStdinWhenDrained = true
        if stdinBacklog == 0 { freeStdin() }
    }

    /// Signals the child's whole process group.
    package func signalGroup(_ sig: Int32) {
        if killpg(pid, sig) != 0 { kill(pid, sig) }
    }

    /// Reads what is left in stdout (after the process exited), delivers the lines, then frees the pipes.
    package func drainAndRelease() {
        if stdoutFd >= 0, stdoutOpen {
            while readStdout() == .data {
                if !deliverLines() { break }
            }
            _ = deliverLines()
        }
        if stderrEv != nil { stderrReadable(final: true) }
        release()
    }

    /// Frees all pipes without reading further.
    package func release() {
        freeStdin()
        if let w = stdoutWatch {
            event_del(w)
            stdoutWatch = nil
            // Not freed inside its own callback: after the current one returns.
            loop.runSoon { event_free(w) }
        }
        if stdoutFd >= 0 {
            close(stdoutFd)
            stdoutFd = -1
        }
        if let e = stderrEv {
            bufferevent_free(e)
            stderrEv = nil
        }
        stdoutOpen = false
    }

    deinit {
        release()
        evbuffer_free(stdoutBuf)
    }

    private func freeStdin() {
        if let e = stdinEv {
            bufferevent_free(e)
            stdinEv = nil
        }
    }

    private func stdinDrained() { if closeStdinWhenDrained { freeStdin() } }
    private func stdinFailed() { freeStdin() }

    private enum ReadResult { case data, again, ended }

    /// Reads what the pipe holds into `stdoutBuf`, never more than one line cap buffered in total.
    private func readStdout() -> ReadResult {
        guard stdoutFd >= 0 else { return .ended }
        var got = false
        reading: for _ in 0..<4 {
            let room = maxLine + 2 - evbuffer_get_length(stdoutBuf)
            guard room > 0 else { break }  // deliverLines declares the over-long line
            let want = min(room, 64 << 10)
            switch readAppending(fd: stdoutFd, into: stdoutBuf, max: want) {
            case .data(let n):
                got = true
                if n < want { break reading }
            case .wouldBlock: break reading
            case .eof, .failed: return got ? .data : .ended  // the child's stdout is gone
            }
        }
        return got ? .data : .again
    }

    private func stdoutReadable() {
        let r = readStdout()
        _ = deliverLines()
        if r == .ended { stdoutEnded() }
    }

    /// Frames complete lines out of the stdout buffer. Returns false when the child was declared broken.
    private func deliverLines() -> Bool {
        guard stdoutFd >= 0, stdoutOpen else { return false }
        let input = stdoutBuf
        while stdoutOpen {
            let buffered = evbuffer_get_length(input)
            if buffered == 0 { return true }
            var eolLen = 0
            let pos = evbuffer_search_eol(input, nil, &eolLen, EVBUFFER_EOL_LF)
            let nl = pos.pos >= 0 ? Int(pos.pos) : nil
            var cr = false
            if let n = nl, n > 0 {
                var c: UInt8 = 0
                var p = evbuffer_ptr()
                evbuffer_ptr_set(input, &p, n - 1, EVBUFFER_PTR_SET)
                evbuffer_copyout_from(input, &p, &c, 1)
                cr = c == 0x0D
            }
            switch LineRule.decide(buffered: buffered, newlineAt: nl, maxLine: maxLine, crBeforeNewline: cr) {
            case .needMore:
                return true
            case .tooLong:
                stdoutOpen = false
                onStdoutClosed(true)
                return false
            case .line(let length, let consume):
                if length > 0, let p = evbuffer_pullup(input, length) {
                    onLine(UnsafeRawBufferPointer(start: p, count: length))
                }
                // onLine may have released us (e.g. a fatal routing decision).
                guard stdoutFd >= 0 else { return false }
                evbuffer_drain(input, consume)
            }
        }
        return false
    }

    private func stdoutEnded() {
        guard stdoutOpen else { return }
        _ = deliverLines()
        guard stdoutOpen else { return }
        stdoutOpen = false
        onStdoutClosed(false)
    }

    private func stderrReadable(final: Bool) {
        guard let e = stderrEv, let input = bufferevent_get_input(e) else { return }
        if final { _ = evbuffer_read(input, bufferevent_getfd(e), 65536) }
        while true {
            var eolLen = 0
            let pos = evbuffer_search_eol(input, nil, &eolLen, EVBUFFER_EOL_LF)
            let buffered = evbuffer_get_length(input)
            var take: Int
            var drop: Int
            if pos.pos >= 0 {
                take = Int(pos.pos)
                drop = take + 1
            } else if buffered >= 4096 || (final && buffered > 0) {
                take = buffered
                drop = buffered
            } else {
                return
            }
            take = min(take, 4096)
            if take > 0, let p = evbuffer_pullup(input, take) {
                onStderrLine(UnsafeRawBufferPointer(start: p, count: take))
            }
            evbuffer_drain(input, drop)
        }
    }

    private func stderrClosed() {
        stderrReadable(final: false)
        if let e = stderrEv {
            bufferevent_free(e)
            stderrEv = nil
        }
    }
}

/// The first step inside a child spawned through the launcher: arm the parent-death signal, then exec.
package enum ChildLauncher {
    package static let verb = "__exec-child"

    /// This executable, for use as the launcher.
    package static func selfPath() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Appended to the parent pid argument: switch to SCHED_BATCH before exec.
    static let batchSuffix = ":batch"

    /// argv: [self, verb, parentPid[:batch], program, argv0, args...]. Never returns.
    package static func exec(_ argv: [String]) -> Never {
        guard argv.count >= 5 else { _exit(64) }
        let batch = argv[2].hasSuffix(batchSuffix)
        guard let parent = Int32(batch ? String(argv[2].dropLast(batchSuffix.count)) : argv[2]) else { _exit(64) }
        if batch {
            // Each dedicated child is woken once per request; under SCHED_OTHER that wake-up preempted the
            // gateway mid-turn (finish_task_switch was 9 % of its CPU at 64 sessions). SCHED_BATCH tasks never
            // preempt on wake-up; their CPU share is the same. 3 = SCHED_BATCH (glibc hides the name behind
            // _GNU_SOURCE). Best effort: a refusal (seccomp, odd kernels) leaves the normal policy.
            var param = sched_param(sched_priority: 0)
            _ = sched_setscheduler(0, 3, &param)
        }
        _ = sy_set_parent_death_signal(SIGKILL)
        // The gateway may have died between spawn and prctl: then we are already orphaned.
        if getppid() != parent { _exit(1) }
        let args: [UnsafeMutablePointer<CChar>?] = argv[4...].map { strdup($0) } + [nil]
        execv(argv[3], args)
        let message = "switchyard: cannot execute \(argv[3]): \(String(cString: strerror(sy_errno())))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(127)
    }
}

/// Reaps exited children on SIGCHLD (waitpid loop, since signals coalesce) and reports pid + status.
package final class ChildReaper {
    private var watcher: SignalWatcher?
    package var onExit: (_ pid: Int32, _ description: String, _ code: Int32) -> Void = { _, _, _ in }

    package init(loop: EventLoop) {
        watcher = SignalWatcher(loop: loop, signal: SIGCHLD) { [unowned self] _ in self.reap() }
    }

    package func reap() {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            if sy_wifexited(status) != 0 {
                let code = sy_wexitstatus(status)
                onExit(pid, "exit status \(code)", code)
            } else if sy_wifsignaled(status) != 0 {
                let sig = sy_wtermsig(status)
                onExit(pid, "killed by signal \(sig)", 128 + sig)
            }
        }
    }

    package func cancel() { watcher?.cancel() }
}

/// The environment a child gets: the SDKs' safe allowlist from ours, then the server's own variables (S-07).
package enum ChildEnvironment {
    static let inherited = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV"]

    package static func build(extra: [(String, String)], passthrough: [String] = [], clear: Bool = false) -> [String] {
        var out: [String] = []
        guard var env = sy_environ() else { return extra.map { "\($0.0)=\($0.1)" } }
        var values: [String: String] = [:]
        while let p = env.pointee {
            let s = String(cString: p)
            if let eq = s.firstIndex(of: "=") { values[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            env = env.advanced(by: 1)
        }
        if !clear {
            for k in inherited + passthrough { if let v = values[k] { out.append("\(k)=\(v)") } }
        }
        for (k, v) in extra {
            out.removeAll { $0.hasPrefix(k + "=") }
            out.append("\(k)=\(v)")
        }
        return out
    }
}
