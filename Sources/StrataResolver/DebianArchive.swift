import Foundation
import StrataLayers
import StrataStore

/// The Debian archive as a repository: every package in the machine's apt indexes is a layer
/// candidate with its real metadata, and becomes a layer unit of the local repository
/// `$STRATA_HOME/debian` the first time a resolved LDF needs it.
///
/// The index of a whole suite is read once into a libsolv `.solv` image under
/// `$STRATA_HOME/cache/`. The image is valid while the Packages files, the apt lists directory and
/// the sources files keep their size and modification time; checking that takes a few `stat`
/// calls, where asking apt for its index targets takes 0.4 s.
public struct DebianArchive: Sendable {
    public let home: StrataHome

    public init(home: StrataHome) {
        self.home = home
    }

    var cacheDirectory: String { home.path + "/cache" }
    var imagePath: String { cacheDirectory + "/debian.solv" }
    var keyPath: String { cacheDirectory + "/debian.key" }
    /// Where imported Debian packages live as layer units.
    public var repositoryPath: String { home.debianRepositoryPath }

    static let aptHelper = "/usr/lib/apt/apt-helper"
    static let sourcesFiles = ["/etc/apt/sources.list", "/etc/apt/sources.list.d"]

    struct Index {
        var repository: SolvRepository
        var baseNames: [String]
    }

    /// Adds the suite to `pool`: from the cached image when it is still valid, else from the
    /// Packages files (and then refreshes the cache).
    func loadIndex(into pool: SolvPool, name: String, priority: Int32, architecture: String) throws -> Index {
        if let key = try? String(contentsOfFile: keyPath, encoding: .utf8), let cached = CacheKey(parsing: key),
           cached.architecture == architecture, cached.isCurrent,
           let repository = try? pool.addRepository(name: name, priority: priority, solvFile: imagePath) {
            return Index(repository: repository, baseNames: cached.baseNames)
        }
        let files = try packagesFiles()
        var text: [UInt8] = []
        for file in files {
            text += try runProgram(Self.aptHelper, ["cat-file", file])
            text += [0x0A, 0x0A]
        }
        let repository = try pool.addRepository(name: name, priority: priority, packages: text)
        let key = try CacheKey(architecture: architecture, indexFiles: files, baseNames: Self.baseNames(in: text))
        try makeDirectories(cacheDirectory)
        try AtomicFile.write(try pool.solvImage(of: repository), to: imagePath)
        try AtomicFile.write(key.text, to: keyPath)
        return Index(repository: repository, baseNames: key.baseNames)
    }

    /// Loads the suite into a pool of its own, as resolution does: from the cache when it is valid,
    /// or from the Packages files (refreshing the cache) when it is not or `rebuild` is set.
    /// Returns the number of packages.
    public func loadIndex(rebuild: Bool = false) throws -> Int {
        if rebuild { try? FileManager.default.removeItem(atPath: keyPath) }
        let architecture = try machineArchitecture()
        let pool = SolvPool(architecture: architecture)
        let index = try loadIndex(into: pool, name: "debian", priority: 1, architecture: architecture)
        pool.prepare()
        return index.repository.solvables.count
    }

    /// The Packages files of the configured apt sources, as apt names them (missing ones skipped:
    /// `apt-get update` has not fetched them).
    func packagesFiles() throws -> [String] {
        let output = try runProgram("/usr/bin/apt-get", ["indextargets", "--format", "$(FILENAME)", "Identifier: Packages"])
        let files = String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init)
            .filter { FileManager.default.fileExists(atPath: $0) }
        if files.isEmpty {
            throw LayerError("apt knows no Packages index on this machine: configure apt sources and run 'apt-get update'")
        }
        return files
    }

    /// Names of Essential: yes and Priority: required packages: the base every Debian system has.
    /// Searches with strstr, which stays fast in debug builds too (Packages text holds no NUL).
    static func baseNames(in text: [UInt8]) -> [String] {
        var names: Set<String> = []
        (text + [0]).withUnsafeBytes { buffer in
            let base = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
            for marker in ["\nEssential: yes\n", "\nPriority: required\n"] {
                var cursor = base
                while let hit = strstr(cursor, marker) {
                    let position = base.distance(to: UnsafePointer(hit))
                    if let name = packageName(before: position, in: buffer) { names.insert(name) }
                    cursor = UnsafePointer(hit + marker.utf8.count)
                }
            }
        }
        return names.sorted()
    }

    /// The `Package:` field of the stanza holding `position`.
    private static func packageName(before position: Int, in buffer: UnsafeRawBufferPointer) -> String? {
        var start = position
        while start > 0 && !(buffer[start - 1] == 0x0A && (start < 2 || buffer[start - 2] == 0x0A)) { start -= 1 }
        let stanza = buffer[start..<position]
        let prefix = Array("Package: ".utf8)
        guard stanza.starts(with: prefix) else { return nil }
        let nameBytes = stanza.dropFirst(prefix.count).prefix { $0 != 0x0A }
        return String(decoding: nameBytes, as: UTF8.self)
    }
}

/// What the cached image was built from: the stat of every file that would change it.
struct CacheKey: Equatable {
    struct Stamp: Equatable {
        var path: String
        var size: Int64
        var modified: Int64
    }

    var architecture: String
    var indexFiles: [String]
    var stamps: [Stamp]
    var baseNames: [String]

    static let header = "strata-debian-cache 1"

    init(architecture: String, indexFiles: [String], baseNames: [String]) throws {
        self.architecture = architecture
        self.indexFiles = indexFiles
        self.stamps = Self.stamps(indexFiles: indexFiles)
        self.baseNames = baseNames
    }

    /// Reads `text` as written by `text`; nil if it is not such a key.
    init?(parsing text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, lines[0] == Self.header else { return nil }
        architecture = lines[1]
        baseNames = lines[2].split(separator: " ").map(String.init)
        indexFiles = []
        stamps = []
        for line in lines.dropFirst(3) where !line.isEmpty {
            let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
            if fields.count == 2, fields[0] == "index" {
                indexFiles.append(fields[1])
            } else if fields.count == 4, fields[0] == "stat", let size = Int64(fields[1]), let modified = Int64(fields[2]) {
                stamps.append(Stamp(path: fields[3], size: size, modified: modified))
            } else {
                return nil
            }
        }
    }

    var text: String {
        let lines = [Self.header, architecture, baseNames.joined(separator: " ")]
            + indexFiles.map { "index \($0)" } + stamps.map { "stat \($0.size) \($0.modified) \($0.path)" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Whether every file still has the size and time recorded, and no sources file came or went.
    var isCurrent: Bool { Self.stamps(indexFiles: indexFiles) == stamps }

    /// The index files, the directories holding them (an index appears there after sources change
    /// and `apt-get update`), and the sources files.
    static func stamps(indexFiles: [String]) -> [Stamp] {
        let directories = Set(indexFiles.map { ($0 as NSString).deletingLastPathComponent }).sorted()
        let listDirectory = DebianArchive.sourcesFiles[1]
        let sources = DebianArchive.sourcesFiles
            + ((try? FileManager.default.contentsOfDirectory(atPath: listDirectory)) ?? []).sorted().map { listDirectory + "/" + $0 }
        return (indexFiles + directories + sources).map { path in
            var info = stat()
            guard stat(path, &info) == 0 else { return Stamp(path: path, size: -1, modified: -1) }
            return Stamp(path: path, size: Int64(info.st_size),
                         modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
        }
    }
}
