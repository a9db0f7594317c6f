import Foundation
import StrataStore

/// Starting the daemon in its own session, detached from the terminal.
public enum Daemon {
    public static func spawn(arguments: [String], log: String) throws -> pid_t {
        try Spawn.start(arguments: arguments, log: log, newSession: true)
    }
}
