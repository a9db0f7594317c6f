import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A directory holding every file type and the metadata a checkout must reproduce.
func makeEveryKindOfFile(in root: String) throws {
    try shell("""
        set -e
        cd '\(root)'
        mkdir -p usr/bin etc/empty var/lib
        printf 'hello\\n' > usr/bin/hello && chmod 4755 usr/bin/hello
        : > etc/empty-file
        printf 'config\\n' > etc/app.conf && chmod 640 etc/app.conf && chown 1:2 etc/app.conf
        ln usr/bin/hello var/lib/hello-link
        ln -s ../bin/hello usr/bin/hi
        ln -s /nonexistent/absolute var/lib/dangling
        mkfifo var/lib/pipe
        mknod var/lib/null c 1 3
        python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("var/lib/sock")'
        setfattr -n user.strata.test -v value etc/app.conf 2>/dev/null || true
        setfattr -h -n trusted.strata.test -v link usr/bin/hi 2>/dev/null || true
        setfattr -n trusted.strata.test -v device var/lib/null 2>/dev/null || true
        touch -h -d '2020-02-03 04:05:06.123456789' usr/bin/hi etc/app.conf
        touch -d '2019-01-01 00:00:00.5' etc/empty
        chmod 1777 var/lib
        """)
}

@Suite struct TreeTests {
    @Test func treeEncodingIsCanonicalAndRoundTrips() throws {
        let digest = SHA256.hash(Array("x".utf8))
        let a = TreeEntry(name: "b", kind: .regular, mode: 0o644, uid: 1, gid: 2, mtime: Timestamp(seconds: -5, nanoseconds: 7), size: 1, digest: digest,
                          xattrs: [ExtendedAttribute(name: "user.z", value: [1]), ExtendedAttribute(name: "user.a", value: [])])
        let b = TreeEntry(name: "a", kind: .symlink, mode: 0o777, target: "b")
        let c = TreeEntry(name: "c", kind: .characterDevice, mode: 0o600, device: 0x0103)
        let forward = Tree(entries: [a, b, c])
        let backward = Tree(entries: [c, b, a])
        #expect(forward.encoded() == backward.encoded())
        let decoded = try Tree(decoding: forward.encoded())
        #expect(decoded == forward)
        #expect(decoded.entry(named: "b")?.xattrs.map(\.name) == ["user.a", "user.z"])
        #expect(decoded.entry(named: "zz") == nil)
    }

    @Test func truncatedOrCorruptManifestsThrow() throws {
        let entries = (0..<50).map { TreeEntry(name: "file\($0)", kind: .regular, mode: 0o644, size: 3, digest: SHA256.hash([UInt8($0)])) }
        let bytes = Tree(entries: entries).encoded()
        for length in stride(from: 0, to: bytes.count - 1, by: 7) {
            #expect(throws: StoreError.self) { try Tree(decoding: Array(bytes[..<length])) }
        }
        var flipped = bytes
        flipped[4] = 99
        #expect(throws: StoreError.self) { try Tree(decoding: flipped) }
    }

    @Test func directoryCheckoutIsIdenticalToItsSource() throws {
        let scratch = try TemporaryDirectory()
        let source = scratch.path + "/source"
        let target = scratch.path + "/target"
        try makeDirectories(source)
        try makeEveryKindOfFile(in: source)
        let store = try ObjectStore(root: scratch.path + "/store", create: true)

        let batch = try store.beginBatch()
        var cache: StatCache? = nil
        let (root, statistics) = try DirectoryImporter.importTree(at: source, into: batch, statCache: &cache)
        try batch.commit()
        #expect(statistics.files == 4)
        try Checkout.run(root, from: store, to: target)

        try expectIdentical(source, target, store: store)
        var st = stat()
        #expect(lstat(target + "/usr/bin/hello", &st) == 0 && st.st_mode & 0o7777 == 0o4755 && st.st_nlink == 2)
        var linked = stat()
        #expect(lstat(target + "/var/lib/hello-link", &linked) == 0 && linked.st_ino == st.st_ino)
        #expect(lstat(target + "/var/lib/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0x0103)
        #expect(lstat(target + "/var/lib/sock", &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK)
        #expect(lstat(target + "/etc/app.conf", &st) == 0 && st.st_uid == 1 && st.st_gid == 2 && st.st_mtim.tv_nsec == 123_456_789)
        #expect(try String(contentsOfFile: target + "/usr/bin/hi", encoding: .utf8) == "hello\n")
        #expect(try shell("getfattr -h --only-values -n trusted.strata.test '\(target)/usr/bin/hi' '\(target)/var/lib/null'") == "linkdevice",
                "xattrs of what cannot be opened (a symlink, a device) are read and written in place")
    }

    @Test func sameContentGivesSameDigestAndIsStoredOnce() throws {
        let scratch = try TemporaryDirectory()
        for name in ["one", "two"] {
            try scratch.write("\(name)/a/file", "same bytes")
            try shell("touch -d '2021-01-01' '\(scratch.path)/\(name)/a/file' '\(scratch.path)/\(name)/a' '\(scratch.path)/\(name)'")
        }
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        let one = try listing(of: scratch.path + "/one", store: store)
        let two = try listing(of: scratch.path + "/two", store: store)
        #expect(one.digest == two.digest)
        // One blob, two trees (root and a/): identical subtrees share objects.
        #expect(try store.allObjects().count == 3)
    }

    @Test func statCacheSkipsUnchangedFilesAndSeesChangedOnes() throws {
        let scratch = try TemporaryDirectory()
        for i in 0..<20 { try scratch.write("tree/f\(i)", "content \(i)") }
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        func ingest() throws -> (Digest, IngestStatistics) {
            var cache: StatCache? = StatCache(path: scratch.path + "/statcache")
            let batch = try store.beginBatch()
            let (root, statistics) = try DirectoryImporter.importTree(at: scratch.path + "/tree", into: batch, statCache: &cache)
            try batch.commit()
            try cache!.save()
            return (root.digest!, statistics)
        }
        let (first, cold) = try ingest()
        #expect(cold.cachedFiles == 0)
        let (second, warm) = try ingest()
        #expect(warm.cachedFiles == 20 && second == first)
        try scratch.write("tree/f3", "changed")
        let (third, changed) = try ingest()
        #expect(changed.cachedFiles == 19 && third != first)
    }

    @Test func tarballsWithEscapingPathsAreRefused() throws {
        let scratch = try TemporaryDirectory()
        let cases = [
            "dotdot": "t.addfile(info('../escape'), io.BytesIO(b'x'))",
            "absolute": "t.addfile(info('/etc/passwd'), io.BytesIO(b'x'))",
            "through-symlink": "l = tarfile.TarInfo('link'); l.type = tarfile.SYMTYPE; l.linkname = '/etc'; t.addfile(l); t.addfile(info('link/passwd'), io.BytesIO(b'x'))",
            "dangling-hardlink": "l = tarfile.TarInfo('h'); l.type = tarfile.LNKTYPE; l.linkname = 'nothing'; t.addfile(l)",
        ]
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        for (name, body) in cases {
            let path = "\(scratch.path)/\(name).tar.gz"
            try shell("""
                python3 -c "
                import io, tarfile
                def info(n):
                    i = tarfile.TarInfo(n); i.size = 1; return i
                t = tarfile.open('\(path)', 'w:gz')
                \(body)
                t.close()"
                """)
            let batch = try store.beginBatch()
            #expect(throws: StoreError.self, "\(name)") { try ArchiveImporter.importTar(at: path, into: batch) }
        }
        #expect(try store.allObjects().isEmpty)
    }

    @Test func truncatedTarballIsRefused() throws {
        let scratch = try TemporaryDirectory()
        try shell("head -c 300000 /dev/urandom > '\(scratch.path)/big' && tar -C '\(scratch.path)' -cJf '\(scratch.path)/t.tar.xz' big && truncate -s 2000 '\(scratch.path)/t.tar.xz'")
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        let batch = try store.beginBatch()
        #expect(throws: StoreError.self) { try ArchiveImporter.importTar(at: scratch.path + "/t.tar.xz", into: batch) }
    }

    @Test func tarballCheckoutMatchesTarExtraction() throws {
        let scratch = try TemporaryDirectory()
        try makeDirectories(scratch.path + "/source")
        try makeEveryKindOfFile(in: scratch.path + "/source")
        try shell("cd '\(scratch.path)/source' && tar --xattrs --numeric-owner -cJf ../source.tar.xz . && mkdir ../extracted && tar --xattrs --xattrs-include='*' -xpf ../source.tar.xz -C ../extracted")
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        let batch = try store.beginBatch()
        let (root, _) = try ArchiveImporter.importTar(at: scratch.path + "/source.tar.xz", into: batch)
        try batch.commit()
        try Checkout.run(root, from: store, to: scratch.path + "/checkout")
        try expectIdentical(scratch.path + "/extracted", scratch.path + "/checkout", store: store)
    }
}
