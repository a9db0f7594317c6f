import CLinux
import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The VLFS against kernel overlayfs as the reference: the same three layers (random trees over one
/// small namespace, so names collide across layers and with the operations), the same seeded random
/// operations on both mounts, the same errno for every operation and the same tree at every checkpoint.
@Suite(.serialized) struct DifferentialTests {
    static let operationCount = 300

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomOperationsMatchOverlayfs(seed: UInt64) throws {
        _ = try Self.compare(seed: seed)
    }

    /// The trees compared after every operation: each walk fills the kernel's caches (readdirplus gives
    /// every name of a hard link its node) before the next change. Both seeds lost the other name of a
    /// hard link that had one of its names unlinked, before `InodeTable.adopt` kept every name's path.
    @Test(arguments: [2, 11] as [UInt64])
    func randomOperationsWalkedAfterEachMatchOverlayfs(seed: UInt64) throws {
        _ = try Self.compare(seed: seed, checkpointInterval: 1)
    }

    /// Runs the seeded operations on the VLFS, mounted with `mountOptions`, and on overlayfs, comparing
    /// the trees every `checkpointInterval` operations; returns the workspace, whose VLFS (named
    /// `stack`) is unmounted.
    static func compare(seed: UInt64, mountOptions: [String] = [], checkpointInterval: Int = 20) throws -> Workspace {
        let workspace = try Workspace("differential\(seed)")
        let root = workspace.scratch.path
        var random = SplitMix64(seed: seed)

        // Top first, as overlayfs wants them; in the VLFS each layer Replaces those below it.
        let lowers = ["l0", "l1", "l2"]
        // Hard links only in the top layer: where a higher layer hides one name of a lower hard link,
        // overlayfs still counts it in st_nlink (the lower file system's count) but the VLFS counts the
        // names that show (an intended difference).
        for name in lowers { try RandomTree.generate(at: "\(root)/\(name)", hardLinks: name == lowers[0], random: &random) }
        for (index, name) in lowers.enumerated() {
            let replaces = lowers[(index + 1)...].joined(separator: ", ")
            expectSuccess(try workspace.strata(["layer", "import", "main", "\(root)/\(name)", "--name", name, "--version", "1"]
                + (replaces.isEmpty ? [] : ["--replaces", replaces])))
        }
        try AtomicFile.write(lowers.map { "main/\($0) 1\n" }.joined(), to: "\(root)/stack.ldf")

        let vlfs = root + "/vlfs"
        let overlay = root + "/overlay"
        for directory in [vlfs, overlay, root + "/upper", root + "/work"] { try makeDirectories(directory) }
        try workspace.mount("\(root)/stack.ldf", at: vlfs, options: mountOptions)
        defer { unmount(vlfs) }
        // Fixed options, whatever the kernel's defaults. index=on keeps a lower hard link one file through
        // copy-up, as the VLFS does (without it overlayfs breaks the link). Without redirect_dir overlayfs
        // refuses to rename merged directories (EXDEV), which `moveDirectory` stands in for.
        let lowerdir = lowers.map { "\(root)/\($0)" }.joined(separator: ":")
        try shell("mount -t overlay overlay -o 'lowerdir=\(lowerdir),upperdir=\(root)/upper,workdir=\(root)/work,redirect_dir=off,index=on,metacopy=off' '\(overlay)'")
        defer { unmount(overlay) }

        var log: [String] = []
        /// Records where the trees differ, with the operations since the last checkpoint; true if they match.
        func treesMatch(_ moment: String) -> Bool {
            let expected = snapshot(overlay)
            let actual = snapshot(vlfs)
            let differences = Set(expected.keys).union(actual.keys).sorted().filter { expected[$0] != actual[$0] }
            guard !differences.isEmpty else { return true }
            let lines = differences.prefix(10).map { path in "\(path): VLFS \(actual[path] ?? "missing"), overlayfs \(expected[path] ?? "missing")" }
            let recent = log.suffix(checkpointInterval).joined(separator: "\n")
            Issue.record("seed \(seed), trees differ \(moment):\n\(lines.joined(separator: "\n"))\noperations since the last checkpoint:\n\(recent)")
            return false
        }

        for index in 1...DifferentialTests.operationCount {
            let operation = Operation.random(&random)
            let vlfsResult = operation.run(in: vlfs)
            var overlayResult = operation.run(in: overlay)
            if overlayResult == EXDEV, case .rename(let from, let to) = operation {
                overlayResult = moveDirectory("\(overlay)/\(from)", "\(overlay)/\(to)")
            }
            log.append("\(index): \(operation) → \(describe(vlfsResult))")
            guard vlfsResult == overlayResult else {
                let recent = log.suffix(checkpointInterval).joined(separator: "\n")
                Issue.record("seed \(seed), operation \(index), \(operation): VLFS \(describe(vlfsResult)), overlayfs \(describe(overlayResult))\n\(recent)")
                return workspace
            }
            if index % checkpointInterval == 0, !treesMatch("after operation \(index)") { return workspace }
        }

        // The private layer and the whiteouts on disk make the same tree again, from cold caches.
        expectSuccess(try workspace.strata("umount", vlfs))
        try workspace.mount("\(root)/stack.ldf", at: vlfs, options: mountOptions)
        _ = treesMatch("after remounting the VLFS")
        return workspace
    }
}

/// SplitMix64: a tiny generator whose sequence a seed fixes, so a failing seed replays exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ range: ClosedRange<Int>) -> [UInt8] {
        (0..<Int.random(in: range, using: &self)).map { _ in UInt8.random(in: 0x20...0x7e, using: &self) }
    }
}

/// Names shared by the layers and the operations: a-d in the layers, e only from operations.
let namespace = ["a", "b", "c", "d"]

func randomPath(_ random: inout SplitMix64) -> String {
    (0..<Int.random(in: 1...3, using: &random)).map { _ in (namespace + ["e"]).randomElement(using: &random)! }.joined(separator: "/")
}

/// Symlink targets that only point down the tree (or nowhere), so that following one never leaves the mount.
let symlinkTargets = ["a", "b", "c/d", "e", "missing"]

/// A random layer tree: directories, files of random sizes and modes, symlinks, user xattrs, and
/// optionally hard links within the layer.
enum RandomTree {
    static func generate(at directory: String, hardLinks: Bool, random: inout SplitMix64) throws {
        var files: [String] = []
        try makeDirectories(directory)
        try fill(directory, depth: 0, hardLinks: hardLinks, files: &files, random: &random)
    }

    private static func fill(_ directory: String, depth: Int, hardLinks: Bool, files: inout [String], random: inout SplitMix64) throws {
        for name in namespace {
            let path = directory + "/" + name
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<35:
                continue
            case 35..<65 where depth < 2:
                try makeDirectories(path)
                chmod(path, [0o755, 0o750, 0o700].randomElement(using: &random)!)
                try fill(path, depth: depth + 1, hardLinks: hardLinks, files: &files, random: &random)
            case 65..<75:
                try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: symlinkTargets.randomElement(using: &random)!)
                continue
            case 75..<80 where hardLinks && !files.isEmpty:
                guard link(files.randomElement(using: &random)!, path) == 0 else { throw SystemError("link", path) }
                continue
            default:
                try AtomicFile.write(random.bytes(0...3000), to: path, mode: [0o644, 0o600, 0o755, 0o640].randomElement(using: &random)!)
                files.append(path)
            }
            if Bool.random(using: &random) {
                try ExtendedAttributes.set(path, ExtendedAttribute(name: "user.k\(Int.random(in: 0...2, using: &random))", value: random.bytes(1...20)))
            }
        }
    }
}

/// One file operation, with paths relative to the mountpoint.
enum Operation: CustomStringConvertible {
    case create(String, mode: mode_t, data: [UInt8])
    /// open(O_CREAT | O_TRUNC): replaces the contents of an existing file without copying them up.
    case overwrite(String, mode: mode_t, data: [UInt8])
    case write(String, offset: Int, data: [UInt8])
    case append(String, data: [UInt8])
    case truncate(String, size: Int)
    case rename(String, String)
    case unlink(String)
    case mkdir(String, mode: mode_t)
    case rmdir(String)
    case chmod(String, mode: mode_t)
    case symlink(target: String, String)
    case link(String, String)
    case setxattr(String, name: String, value: [UInt8], flags: Int32)
    case removexattr(String, name: String)

    static func random(_ random: inout SplitMix64) -> Operation {
        let path = randomPath(&random)
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<8: return .create(path, mode: [0o644, 0o600, 0o755].randomElement(using: &random)!, data: random.bytes(0...2000))
        case 8..<12: return .overwrite(path, mode: [0o644, 0o600].randomElement(using: &random)!, data: random.bytes(0...2000))
        case 12..<20: return .write(path, offset: Int.random(in: 0...3000, using: &random), data: random.bytes(1...500))
        case 20..<25: return .append(path, data: random.bytes(1...100))
        case 25..<31: return .truncate(path, size: Int.random(in: 0...4000, using: &random))
        case 31..<45: return .rename(path, randomPath(&random))
        case 45..<55: return .unlink(path)
        case 55..<65: return .mkdir(path, mode: [0o755, 0o700].randomElement(using: &random)!)
        case 65..<74: return .rmdir(path)
        case 74..<80: return .chmod(path, mode: [0o644, 0o600, 0o755, 0o700, 0o444].randomElement(using: &random)!)
        case 80..<85: return .symlink(target: symlinkTargets.randomElement(using: &random)!, path)
        case 85..<91: return .link(path, randomPath(&random))
        case 91..<97:
            return .setxattr(path, name: "user.k\(Int.random(in: 0...2, using: &random))", value: random.bytes(0...20),
                             flags: [0, Int32(XATTR_CREATE), Int32(XATTR_REPLACE)].randomElement(using: &random)!)
        default: return .removexattr(path, name: "user.k\(Int.random(in: 0...2, using: &random))")
        }
    }

    /// Runs the operation on the tree at `root`: 0, or the errno of the call that failed.
    func run(in root: String) -> Int32 {
        func result(_ value: some BinaryInteger) -> Int32 { value < 0 ? errno : 0 }
        func writing(_ path: String, _ flags: Int32, mode: mode_t = 0, offset: Int? = nil, _ data: [UInt8]) -> Int32 {
            let fd = open(root + "/" + path, flags | O_WRONLY | O_CLOEXEC, mode)
            guard fd >= 0 else { return errno }
            defer { close(fd) }
            return result(data.withUnsafeBytes { bytes in
                if let offset { return pwrite(fd, bytes.baseAddress, bytes.count, off_t(offset)) }
                return Glibc.write(fd, bytes.baseAddress, bytes.count)
            })
        }
        switch self {
        case .create(let path, let mode, let data): return writing(path, O_CREAT | O_EXCL, mode: mode, data)
        case .overwrite(let path, let mode, let data): return writing(path, O_CREAT | O_TRUNC, mode: mode, data)
        case .write(let path, let offset, let data): return writing(path, 0, offset: offset, data)
        case .append(let path, let data): return writing(path, O_APPEND, data)
        case .truncate(let path, let size): return result(Glibc.truncate(root + "/" + path, off_t(size)))
        case .rename(let from, let to): return result(Glibc.rename(root + "/" + from, root + "/" + to))
        case .unlink(let path): return result(Glibc.unlink(root + "/" + path))
        case .mkdir(let path, let mode): return result(Glibc.mkdir(root + "/" + path, mode))
        case .rmdir(let path): return result(Glibc.rmdir(root + "/" + path))
        case .chmod(let path, let mode): return result(Glibc.chmod(root + "/" + path, mode))
        case .symlink(let target, let path): return result(Glibc.symlink(target, root + "/" + path))
        case .link(let from, let to): return result(Glibc.link(root + "/" + from, root + "/" + to))
        case .setxattr(let path, let name, let value, let flags):
            return result(value.withUnsafeBytes { CLinux.setxattr(root + "/" + path, name, $0.baseAddress, $0.count, flags) })
        case .removexattr(let path, let name): return result(CLinux.removexattr(root + "/" + path, name))
        }
    }

    var description: String {
        switch self {
        case .create(let path, let mode, let data): "create \(path) \(String(mode, radix: 8)) (\(data.count) bytes)"
        case .overwrite(let path, let mode, let data): "overwrite \(path) \(String(mode, radix: 8)) (\(data.count) bytes)"
        case .write(let path, let offset, let data): "write \(path) at \(offset) (\(data.count) bytes)"
        case .append(let path, let data): "append \(path) (\(data.count) bytes)"
        case .truncate(let path, let size): "truncate \(path) to \(size)"
        case .rename(let from, let to): "rename \(from) \(to)"
        case .unlink(let path): "unlink \(path)"
        case .mkdir(let path, let mode): "mkdir \(path) \(String(mode, radix: 8))"
        case .rmdir(let path): "rmdir \(path)"
        case .chmod(let path, let mode): "chmod \(path) \(String(mode, radix: 8))"
        case .symlink(let target, let path): "symlink \(path) -> \(target)"
        case .link(let from, let to): "link \(from) \(to)"
        case .setxattr(let path, let name, let value, let flags): "setxattr \(path) \(name)=\(String(decoding: value, as: UTF8.self)) flags \(flags)"
        case .removexattr(let path, let name): "removexattr \(path) \(name)"
        }
    }
}

func describe(_ result: Int32) -> String { result == 0 ? "ok" : "\(String(cString: strerror(result))) (\(result))" }

/// Stands in for a directory rename that overlayfs refuses with EXDEV because the directory is
/// merged from lower layers. The VLFS renames such directories on purpose (DESIGN §6: npm, conda
/// and rustup break on EXDEV, moby/moby#25409), so the reference becomes what overlayfs with
/// redirect_dir would do: refuse a non-empty target, else rebuild the directory at the new name and
/// rename its children into it one by one (recursively for merged ones), keeping hard links.
func moveDirectory(_ from: String, _ to: String) -> Int32 {
    var st = stat()
    if lstat(to, &st) == 0 {
        // The kernel already refused a non-directory target before asking overlayfs.
        guard (try? FileManager.default.contentsOfDirectory(atPath: to))?.isEmpty ?? false else { return ENOTEMPTY }
        guard rmdir(to) == 0 else { return errno }
    }
    guard lstat(from, &st) == 0, mkdir(to, 0o700) == 0, chmod(to, st.st_mode & 0o7777) == 0 else { return errno }
    for attribute in (try? ExtendedAttributes.list(from)) ?? [] { try? ExtendedAttributes.set(to, attribute) }
    for child in (try? FileManager.default.contentsOfDirectory(atPath: from)) ?? [] {
        if rename(from + "/" + child, to + "/" + child) == 0 { continue }
        guard errno == EXDEV else { return errno }
        let moved = moveDirectory(from + "/" + child, to + "/" + child)
        guard moved == 0 else { return moved }
    }
    return rmdir(from) == 0 ? 0 : errno
}

/// What the comparison covers, one line per path: type, permission bits, user xattrs, and for
/// non-directories size, link count and content (digest or symlink target). Inode numbers, times and
/// directory sizes and link counts differ legitimately; `user.strata.*` is the VLFS's own. A call
/// that fails shows in the line, so that it is compared like the rest.
func snapshot(_ root: String, _ relative: String = "") -> [String: String] {
    var result: [String: String] = [:]
    let names: [String]
    do {
        names = try FileManager.default.contentsOfDirectory(atPath: root + "/" + relative)
    } catch {
        return [relative: "listing failed: \(error)"]
    }
    for name in names {
        let path = relative.isEmpty ? name : relative + "/" + name
        let full = root + "/" + path
        var st = stat()
        guard lstat(full, &st) == 0 else {
            result[path] = "lstat failed: \(describe(errno))"
            continue
        }
        var line = String(st.st_mode, radix: 8)
        do {
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                result.merge(snapshot(root, path)) { $1 }
            case S_IFLNK:
                line += " -> " + (try FileManager.default.destinationOfSymbolicLink(atPath: full))
            default:
                let content = try FileDescriptor.open(full, O_RDONLY).readAll()
                line += " size \(st.st_size) links \(st.st_nlink) \(SHA256.hash(content).description.suffix(12))"
            }
            for attribute in try ExtendedAttributes.list(full) where attribute.name.hasPrefix("user.") && !attribute.name.hasPrefix("user.strata.") {
                line += " \(attribute.name)=\(String(decoding: attribute.value, as: UTF8.self))"
            }
        } catch {
            line += " failed: \(error)"
        }
        result[path] = line
    }
    return result
}
