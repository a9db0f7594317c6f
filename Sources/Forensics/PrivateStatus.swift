import Foundation
import Mirage
import StrataLayers
import StrataStore
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// One change an appliance made: everything it changed is in its private layer or its whiteouts.
public struct PrivateChange: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case added, modified, deleted, metadata }

    public var kind: Kind
    /// Absolute within the VLFS.
    public var path: String
    /// The shared layer unit the change shadows or deletes from (`name version`), if any.
    public var layer: String?
    public var severity: Finding.Severity
    /// Why it matters, most severe reason first.
    public var reasons: [String]
    public var digest: Digest?
}

/// `private status`: the private layer compared with the shared layers beneath it, with the offline
/// scanner's findings and rules about what an intruder changes (replaced binaries and libraries,
/// persistence, covered tracks), most severe first.
public enum PrivateStatus {
    static let systemExecutableDirectories = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"]
    static let libraryDirectories = ["lib", "lib64", "usr/lib", "usr/lib64", "usr/local/lib"]
    static let persistence = ["etc/cron.d", "etc/cron.daily", "etc/cron.hourly", "etc/cron.weekly", "etc/cron.monthly", "etc/crontab",
                              "var/spool/cron", "etc/systemd/system", "etc/init.d", "etc/rc.local", "etc/profile.d", "root/.ssh"]
    static let sensitive = ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow", "etc/sudoers", "etc/sudoers.d", "etc/ssh", "etc/pam.d",
                            "etc/ld.so.preload", "etc/security"]

    /// The changes of a VLFS as its state stands; its private layer is stored in the catalog's store
    /// to be scanned (gc collects it again unless a snapshot keeps it).
    public static func changes(of state: VLFSState, home: StrataHome, catalog: Catalog, deny: DenyList = DenyList()) throws -> [PrivateChange] {
        // A daemon mounted with writeback caching leaves writes that returned in the kernel's cache: have it
        // push them to the private layer first. No daemon answering: nothing is held.
        _ = try? ControlChannel.send("flush", to: state.controlSocket)
        let batch = try catalog.store.beginBatch()
        var noCache: StatCache? = nil
        let privateTree = try DirectoryImporter.importTree(at: state.privateRoot, into: batch, statCache: &noCache).root
        try batch.commit()
        return try changes(of: try Composition.union(of: state, home: home), privateTree: privateTree, store: catalog.store, deny: deny)
    }

    /// `privateTree` is the private layer stored (for instance by a snapshot) in `store`.
    public static func changes(of union: Union, privateTree: TreeEntry, store: ObjectStore, deny: DenyList = DenyList()) throws -> [PrivateChange] {
        var findings: [String: [Finding]] = [:]
        for finding in try Scanner.scan(ScanTree(root: privateTree, store: store), deny: deny) {
            findings[String(finding.path.dropFirst()), default: []].append(finding)
        }
        var changes: [PrivateChange] = []
        var replaced = Set<String>()
        try store.walk(privateTree.digest!) { path, entry in
            // A file written elsewhere and renamed over a shared one whites the original out.
            var shared = union.sharedEntry(at: path)
            if shared == nil, let hidden = union.hiddenEntry(at: path) {
                shared = hidden
                replaced.insert(path)
            }
            let kind: PrivateChange.Kind
            if let shared {
                if entry.kind == .directory && shared.entry.kind == .directory {
                    guard !sameMetadata(entry, shared.entry) else { return }
                    kind = .metadata
                } else if entry.kind != shared.entry.kind || entry.digest != shared.entry.digest || entry.target != shared.entry.target {
                    kind = .modified
                } else if !sameMetadata(entry, shared.entry) {
                    kind = .metadata
                } else {
                    return  // An unchanged copy (a parent directory made private for a child).
                }
            } else {
                kind = .added
            }
            var change = PrivateChange(kind: kind, path: "/" + path, layer: shared?.layer.label, severity: .info, reasons: [], digest: entry.digest)
            judge(&change, entry: entry, relative: path, findings: findings[path] ?? [])
            changes.append(change)
        }
        for (index, layer) in union.stack.layers.enumerated() {
            for path in union.stack.whiteouts[index].all where !replaced.contains(path) {
                var change = PrivateChange(kind: .deleted, path: "/" + path, layer: layer.label, severity: .low, reasons: ["deleted from \(layer.label)"], digest: nil)
                if isBelow(path, ["var/log"]) { raise(&change, .high, "a log file was deleted: tracks may have been covered") }
                if isBelow(path, systemExecutableDirectories + libraryDirectories + ["etc"]) { raise(&change, .medium, "a system file was deleted") }
                changes.append(change)
            }
        }
        return changes.sorted { ($0.severity, $0.path) < ($1.severity, $1.path) }
    }

    static func sameMetadata(_ a: TreeEntry, _ b: TreeEntry) -> Bool {
        a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.xattrs == b.xattrs
    }

    static func isBelow(_ path: String, _ directories: [String]) -> Bool {
        directories.contains { path == $0 || path.hasPrefix($0 + "/") }
    }

    private static func raise(_ change: inout PrivateChange, _ severity: Finding.Severity, _ reason: String) {
        change.severity = min(change.severity, severity)
        change.reasons.append(reason)
    }

    private static func judge(_ change: inout PrivateChange, entry: TreeEntry, relative path: String, findings: [Finding]) {
        let isExecutable = entry.kind == .regular && entry.mode & 0o111 != 0
        let isLibrary = entry.kind == .regular && (path.hasSuffix(".so") || path.contains(".so."))
        switch change.kind {
        case .modified where isBelow(path, systemExecutableDirectories) || (isBelow(path, libraryDirectories) && (isExecutable || isLibrary)):
            raise(&change, .critical, "replaces a shared \(isLibrary ? "library" : "executable") of \(change.layer ?? "a shared layer")")
        case .added where isBelow(path, systemExecutableDirectories) && isExecutable:
            raise(&change, .high, "a new executable in a system directory")
        default:
            break
        }
        if isBelow(path, persistence) && change.kind != .metadata && entry.kind != .directory {
            raise(&change, .high, "runs automatically (persistence): \(change.kind == .added ? "added" : "changed")")
        }
        if isBelow(path, sensitive) && change.kind != .added {
            raise(&change, .high, "changes who may log in or what runs as root")
        } else if isBelow(path, ["etc"]) && change.kind == .modified {
            raise(&change, .medium, "configuration changed")
        }
        for finding in findings { raise(&change, finding.severity, "\(finding.rule): \(finding.detail)") }
        if change.reasons.isEmpty { change.reasons.append(change.kind == .added ? "added" : "\(change.kind.rawValue)") }
        if change.severity == .info && change.kind == .modified { change.severity = .low }
    }
}
