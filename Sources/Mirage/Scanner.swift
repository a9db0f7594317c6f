import StrataStore

/// A stored filesystem tree to scan: an image's, a layer's, or a VLFS's private layer.
public struct ScanTree: Sendable {
    public var root: TreeEntry
    public var store: ObjectStore

    public init(root: TreeEntry, store: ObjectStore) {
        self.root = root
        self.store = store
    }
}

public struct Finding: Hashable, Sendable, Codable {
    public enum Severity: String, Sendable, Codable, CaseIterable, Comparable {
        case critical, high, medium, low, info

        public static func < (a: Severity, b: Severity) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// The rule's name, such as `setuid` or `changed-configuration`.
    public var rule: String
    public var severity: Severity
    /// Absolute within the tree (`/usr/bin/sudo`).
    public var path: String
    public var detail: String
    public var digest: Digest?

    public init(rule: String, severity: Severity, path: String, detail: String, digest: Digest?) {
        self.rule = rule
        self.severity = severity
        self.path = path
        self.detail = detail
        self.digest = digest
    }
}

/// The offline scanner: built-in rules over a stored tree, without mounting or booting it. Rules that
/// look at one entry at a time run over a walk of the tree; rules about change run over the diff from
/// a base tree, which costs only as much as the difference.
public enum Scanner {
    /// Where system executables live; a binary here is trusted by every user's PATH.
    static let systemBinaryDirectories = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"]
    /// Directories anyone can write to; an executable there is a classic dropper.
    static let temporaryDirectories = ["tmp", "var/tmp", "dev/shm", "run", "var/run"]
    /// Configuration whose change alters who may log in or what runs as root.
    static let sensitiveConfiguration = ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow", "etc/sudoers", "etc/sudoers.d", "etc/ssh/sshd_config",
                                         "etc/pam.d", "etc/ld.so.preload", "etc/crontab", "etc/cron.d", "etc/security"]

    /// Scans `tree`; with a `base`, also reports what changed relative to it (configuration, system
    /// executables). Findings come sorted by severity, then path.
    public static func scan(_ tree: ScanTree, base: ScanTree? = nil, deny: DenyList = DenyList()) throws -> [Finding] {
        var findings: [Finding] = []
        if let root = tree.root.digest {
            try tree.store.walk(root) { path, entry in findings += inspect(path, entry, deny: deny) }
        }
        if let base {
            try TreeDiff.compare(base.root.digest, tree.root.digest, oldStore: base.store, newStore: tree.store, expandDirectories: true) { path, change in
                findings += compare(path, change)
            }
        }
        return findings.sorted { ($0.severity, $0.path, $0.rule) < ($1.severity, $1.path, $1.rule) }
    }

    static func isBelow(_ path: String, _ directories: [String]) -> Bool {
        directories.contains { path == $0 || path.hasPrefix($0 + "/") }
    }

    static func isExecutable(_ entry: TreeEntry) -> Bool { entry.kind == .regular && entry.mode & 0o111 != 0 }

    /// Rules about one entry as it is.
    static func inspect(_ relative: String, _ entry: TreeEntry, deny: DenyList) -> [Finding] {
        let path = "/" + relative
        var found: [Finding] = []
        func report(_ rule: String, _ severity: Finding.Severity, _ detail: String) {
            found.append(Finding(rule: rule, severity: severity, path: path, detail: detail, digest: entry.digest))
        }
        let mode = "mode \(String(entry.mode, radix: 8)), owner \(entry.uid):\(entry.gid)"
        if entry.kind == .regular {
            if entry.mode & 0o4000 != 0 {
                report("setuid", entry.uid == 0 ? .high : .medium, "runs as \(entry.uid == 0 ? "root" : "uid \(entry.uid)") whoever starts it (\(mode))")
            }
            if entry.mode & 0o2000 != 0 && entry.mode & 0o010 != 0 {
                report("setgid", .medium, "runs with group \(entry.gid) whoever starts it (\(mode))")
            }
            if let reason = deny.reason(for: entry.digest!) {
                report("denied-content", .critical, "content is on the deny list" + (reason.isEmpty ? "" : ": \(reason)"))
            }
        }
        let inSystemBin = isBelow(relative, systemBinaryDirectories)
        if entry.kind != .symlink && entry.mode & 0o002 != 0 {
            if entry.kind == .directory {
                let sticky = entry.mode & 0o1000 != 0
                report("world-writable", sticky ? .low : .high,
                       sticky ? "world-writable directory with the sticky bit (\(mode))" : "anyone can add, remove or rename entries here (\(mode))")
            } else {
                report("world-writable", inSystemBin ? .critical : .high, "anyone can change this \(entry.kind) (\(mode))")
            }
        }
        if isExecutable(entry) && inSystemBin && entry.uid != 0 {
            report("system-executable-owner", .high, "system executable not owned by root: its owner can change what every user runs (\(mode))")
        }
        if isExecutable(entry) && isBelow(relative, temporaryDirectories) {
            report("executable-in-temporary-directory", .high, "executable in a directory meant for temporary data (\(mode))")
        }
        return found
    }

    /// Rules about change relative to a base.
    static func compare(_ relative: String, _ change: TreeDiff.Change) -> [Finding] {
        let path = "/" + relative
        let (verb, entry): (String, TreeEntry) = switch change {
        case .added(let new): ("added", new)
        case .deleted(let old): ("deleted", old)
        case .modified(_, let new): ("modified", new)
        case .metadata(_, let new): ("metadata changed", new)
        }
        var found: [Finding] = []
        if isBelow(relative, ["etc"]) && entry.kind != .directory {
            let severity: Finding.Severity
            if isBelow(relative, sensitiveConfiguration) {
                severity = .high
            } else if case .metadata = change {
                severity = .info
            } else {
                severity = .low
            }
            found.append(Finding(rule: "changed-configuration", severity: severity, path: path, detail: "\(verb) relative to the base", digest: entry.digest))
        }
        if isBelow(relative, systemBinaryDirectories) && isExecutable(entry) {
            switch change {
            case .added, .modified:
                found.append(Finding(rule: "changed-system-executable", severity: .medium, path: path, detail: "\(verb) relative to the base", digest: entry.digest))
            default:
                break
            }
        }
        return found
    }
}
