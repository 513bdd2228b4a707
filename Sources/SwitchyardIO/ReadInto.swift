// One read(2) appended to an evbuffer: the shared read primitive of client sockets and child stdout.
//
// The bytes land in reserved evbuffer space (evbuffer_reserve_space/commit): evbuffer_read asked the kernel
// for FIONREAD first, one ioctl per read, and the answer is rarely needed: we know how much we want.

internal import CLibEvent
#if canImport(Glibc)
    internal import Glibc
#endif

enum ReadOutcome: Equatable {
    /// This many bytes were appended.
    case data(Int)
    /// Nothing to read now (EAGAIN).
    case wouldBlock
    /// The peer closed (read returned 0).
    case eof
    /// A read or allocation error: treat the descriptor as gone.
    case failed
}

/// Reads at most `max` bytes from `fd` into `buf` (retrying EINTR).
func readAppending(fd: Int32, into buf: OpaquePointer, max: Int) -> ReadOutcome {
    var vec = iovec()
    guard max > 0, evbuffer_reserve_space(buf, max, &vec, 1) >= 1 else { return .failed }
    while true {
        let n = read(fd, vec.iov_base, min(vec.iov_len, max))
        if n > 0 {
            vec.iov_len = n
            evbuffer_commit_space(buf, &vec, 1)
            return .data(n)
        }
        if n == 0 { return .eof }
        let e = sy_errno()
        if e == EINTR { continue }
        return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed
    }
}
