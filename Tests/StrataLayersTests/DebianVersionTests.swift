import Foundation
import Testing
@testable import StrataLayers

/// Versions chosen to hit every branch of dpkg's comparison: epochs, tildes, `+`, `.`, leading zeros,
/// letters against digits, missing and empty-looking revisions, hyphens inside upstream, colons after
/// an epoch, and upstream parts that do not start with a digit (dpkg warns but compares).
private let trickyVersions = [
    "0", "00", "1", "01", "1.0", "1.00", "1.0-0", "1.0-1", "1.0-01", "1.0-1.1", "1.0-2", "1.0-10",
    "0:1.0", "1:0", "1:1.0", "2:0.1", "1.0~rc1", "1.0~rc1-1", "1.0~~", "1.0~", "1.0~a", "1.0+b1",
    "1.0+dfsg-1", "1.0.1", "1.0a", "1.0a0", "1.0.a", "1.0-1~bpo11+1", "2.30-1~bpo", "2.30-1",
    "2.30-1+deb12u1", "9", "10", "001.002", "1.2.3-4ubuntu1", "1:1.2.3-4", "3a8.1.2-0.20040524cvs-4",
    "5.0.51a-3", "1.0-a", "1.0-1-1", "1:2:3-1", "1.", "1..0", "1~", "a1", "1.0-1+", "1.0-1~",
]

private func dpkgOrder(_ pairs: [(String, String)]) throws -> [Int] {
    let script = """
        while read -r a b; do
          if dpkg --compare-versions "$a" lt "$b" 2>/dev/null; then echo -1
          elif dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then echo 0
          else echo 1; fi
        done
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(pairs.map { "\($0) \($1)\n" }.joined().utf8))
    try input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map { Int($0)! }
}

private let hasDpkg = FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg")

@Suite struct DebianVersionTests {
    @Test(.enabled(if: hasDpkg, "needs dpkg"))
    func ordersExactlyLikeDpkg() throws {
        let versions = try trickyVersions.map(DebianVersion.init)
        var pairs: [(Int, Int)] = []
        for i in versions.indices { for j in versions.indices where i <= j { pairs.append((i, j)) } }
        let expected = try dpkgOrder(pairs.map { (trickyVersions[$0], trickyVersions[$1]) })
        #expect(pairs.count > 1000)
        #expect(expected.count == pairs.count)
        for ((i, j), want) in zip(pairs, expected) {
            let a = versions[i], b = versions[j]
            let got = DebianVersion.compare(a, b).signum()
            #expect(got == want, "\(a) vs \(b): dpkg says \(want), we say \(got)")
            #expect(DebianVersion.compare(b, a).signum() == -want, "\(b) vs \(a) is not antisymmetric")
            #expect((a == b) == (want == 0))
            #expect((a < b) == (want < 0))
            if a == b { #expect(a.hashValue == b.hashValue, "\(a) == \(b) but their hashes differ") }
        }
    }

    @Test func debianEqualityIsNotStringEquality() throws {
        #expect(try DebianVersion("1.0") == DebianVersion("1.00"))
        #expect(try DebianVersion("0:1.0") == DebianVersion("1.0"))
        #expect(try DebianVersion("1.0-0") == DebianVersion("1.0"))
        #expect(try DebianVersion("1a") == DebianVersion("1a0"))
        #expect(try DebianVersion("1.0") != DebianVersion("1.0.0"))
        let set = Set(try ["1.0", "1.00", "0:1.0", "01.0-0", "1.0-1"].map(DebianVersion.init))
        #expect(set.count == 2)
    }

    @Test func sortsTildeBeforeReleaseAndBackportsBelowTheOriginal() throws {
        let sorted = try ["1.0", "1.0~rc1", "1.0+b1", "1.0~~", "1:0.1", "1.0-1~bpo11+1", "1.0-1"]
            .map(DebianVersion.init).sorted().map(\.description)
        #expect(sorted == ["1.0~~", "1.0~rc1", "1.0", "1.0-1~bpo11+1", "1.0-1", "1.0+b1", "1:0.1"])
    }

    @Test func splitsEpochUpstreamAndRevision() throws {
        let version = try DebianVersion("2:1.2-3-4~bpo1")
        #expect(version.epoch == 2)
        #expect(version.upstream == "1.2-3")
        #expect(version.revision == "4~bpo1")
        #expect(version.description == "2:1.2-3-4~bpo1")

        let colons = try DebianVersion("1:2:3-1")
        #expect(colons.epoch == 1 && colons.upstream == "2:3" && colons.revision == "1")

        let plain = try DebianVersion("  0:7.6  ")
        #expect(plain.epoch == 0 && plain.upstream == "7.6" && plain.revision == "")
        #expect(plain.description == "0:7.6", "description keeps the explicit epoch, minus the blanks")
    }

    @Test(arguments: [
        ("", "version is empty"),
        ("1.0-", "revision is empty"),
        (":1.0", "epoch is empty"),
        ("a:1.0", "epoch is not a number"),
        ("99999999999:1", "epoch is too big"),
        ("1:", "nothing after the epoch colon"),
        ("-1", "upstream version is empty"),
        ("1.0 1", "version contains whitespace"),
        ("1_0", "character '_' not allowed in upstream version"),
        ("1.0-1_1", "character '_' not allowed in revision"),
        ("1:1.0-1:1", "character ':' not allowed in revision"),
    ])
    func rejectsInvalidVersions(text: String, reason: String) {
        #expect {
            try DebianVersion(text)
        } throws: { error in
            (error as? ParseError)?.description == "invalid version '\(text)': \(reason)"
        }
    }

    @Test(.enabled(if: hasDpkg, "needs dpkg"))
    func acceptsWhatDpkgAcceptsAndRejectsWhatItCallsAnError() throws {
        // `dpkg --validate-version` exits 0 for valid, 1 for syntax warnings, 2 for errors.
        let candidates = ["1.0", "1:2:3", "a1", "1.0-", "1.0 1", "", "99999999999:1", "-1", "1:", "0:0", "1.0-1-1"]
        for text in candidates {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/dpkg")
            process.arguments = ["--validate-version", text]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            let accepted = (try? DebianVersion(text)) != nil
            switch process.terminationStatus {
            case 0: #expect(accepted, "dpkg accepts '\(text)'")
            case 2: #expect(!accepted, "dpkg rejects '\(text)'")
            default: #expect(text == "a1", "only the not-starting-with-a-digit warning is expected here")
            }
        }
    }

    @Test func operatorsRelateCandidateToReference() throws {
        let old = try DebianVersion("1.0"), new = try DebianVersion("1.1"), same = try DebianVersion("1.00")
        #expect(RelationOperator.greaterOrEqual.isSatisfied(by: new, comparedTo: old))
        #expect(RelationOperator.greaterOrEqual.isSatisfied(by: same, comparedTo: old))
        #expect(!RelationOperator.greaterThan.isSatisfied(by: same, comparedTo: old))
        #expect(RelationOperator.greaterThan.isSatisfied(by: new, comparedTo: old))
        #expect(RelationOperator.lessThan.isSatisfied(by: old, comparedTo: new))
        #expect(!RelationOperator.lessThan.isSatisfied(by: same, comparedTo: old))
        #expect(RelationOperator.lessOrEqual.isSatisfied(by: same, comparedTo: old))
        #expect(RelationOperator.equal.isSatisfied(by: same, comparedTo: old))
        #expect(!RelationOperator.equal.isSatisfied(by: new, comparedTo: old))
        #expect(RelationOperator(token: "<") == .lessOrEqual)
        #expect(RelationOperator(token: ">") == .greaterOrEqual)
        #expect(RelationOperator(token: ">>") == .greaterThan)
        #expect(RelationOperator(token: "=>") == nil)
    }
}
