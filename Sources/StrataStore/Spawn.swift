import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starting this program again (`/proc/self/exe`) as a child: the daemon, the sandbox's stages.
public enum Spawn {
    /// Starts `arguments` (argv[0] first) with no signal mask or ignored signals inherited (threaded
    /// callers block most signals, and the child must hear SIGTERM) and nothing open but standard
    /// input (`/dev/null`) and output: the caller's (`inheritOutput`), or `log` (appended), or `/dev/null`.
    /// `environment` replaces the caller's when given; `newSession` detaches the child from the terminal.
    public static func start(arguments: [String], log: String? = nil, inheritOutput: Bool = false, environment: [String]? = nil,
                             newSession: Bool = false) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if !inheritOutput {
            posix_spawn_file_actions_addopen(&actions, 1, log ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Nothing else leaks into the child: an inherited pipe would keep a caller waiting for EOF.
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newSession ? 0x80 : 0)))  // 0x80: POSIX_SPAWN_SETSID
        var pid: pid_t = 0
        let cArguments = arguments.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { $0.map { strdup($0) } + [nil] }
        defer { (cArguments + (cEnvironment ?? [])).forEach { free($0) } }
        let result = cEnvironment.map { posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, cArguments, $0) }
            ?? posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, cArguments, environ)
        guard result == 0 else { throw SystemError("posix_spawn", "/proc/self/exe", errno: result) }
        return pid
    }

    /// Waits for a child; its exit status, or 128 + the signal that ended it (as a shell reports it).
    public static func wait(_ pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        _ = try sys("waitpid", "\(pid)") { waitpid(pid, &status, 0) }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
