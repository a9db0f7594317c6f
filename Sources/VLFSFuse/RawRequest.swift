import CFuse3
#if canImport(Glibc)
import Glibc
#endif

/// What the daemon reads from a request's raw bytes that libfuse 3.14 does not pass on, kept for the
/// operation that answers the request: libfuse reads a request and answers it on one thread, so a
/// thread's last request is the one its operation answers.
enum RawRequest {
    private static let killsSetuidSetgidKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-specific key left")
        return key
    }()

    /// Notes a request as read from /dev/fuse.
    static func inspect(_ request: UnsafeRawBufferPointer) {
        let kills = strata_fuse_request_kills_suidgid(request.baseAddress, request.count) != 0
        pthread_setspecific(killsSetuidSetgidKey, kills ? UnsafeRawPointer(bitPattern: 1) : nil)
    }

    /// Whether the kernel asks this request's operation to clear setuid and setgid, as a write,
    /// truncation or chown by a user without CAP_FSETID does (FUSE_HANDLE_KILLPRIV_V2).
    static var killsSetuidSetgid: Bool { pthread_getspecific(killsSetuidSetgidKey) != nil }
}
