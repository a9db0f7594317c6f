import CLinux
import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Starting the daemon in its own session, detached from the terminal.
public enum Daemon {
    public static func spawn(arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else leaks into the daemon: an inherited pipe would keep a caller waiting for EOF.
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A fresh session, and no signal mask or ignored signals inherited from the caller (threaded
        // callers block most signals): the daemon must hear SIGTERM.
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | 0x80))  // 0x80: POSIX_SPAWN_SETSID
        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let result = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, cArguments, environ)
        guard result == 0 else { throw SystemError("posix_spawn", "/proc/self/exe", errno: result) }
        return pid
    }
}
