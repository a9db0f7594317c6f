/// A Debian version `[epoch:]upstream[-revision]`, ordered exactly as `dpkg --compare-versions`.
///
/// Equality is Debian equality: `1.0 == 1.00` and `0:1.0 == 1.0`, and `hash(into:)` agrees with it.
/// `description` gives back the string the version was parsed from.
public struct DebianVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public let epoch: Int
    public let upstream: String
    /// Empty when the version has no `-revision` (which dpkg treats like revision `0`).
    public let revision: String
    public let description: String

    /// Parses and validates like dpkg's `parseversion`, except that an upstream part not starting with a
    /// digit is accepted (dpkg only warns about it). Leading and trailing blanks are ignored, as in dpkg.
    public init(_ string: String) throws {
        let text = String(Substring(string).drop(while: \.isBlank).droppingTrailing(while: \.isBlank))
        func fail(_ why: String) -> ParseError {
            ParseError(file: "", line: nil, message: "invalid version '\(string)': \(why)")
        }
        if text.isEmpty { throw fail("version is empty") }
        if text.contains(where: \.isWhitespace) { throw fail("version contains whitespace") }

        var rest = Substring(text)
        var epoch = 0
        if let colon = rest.firstIndex(of: ":") {
            let digits = rest[..<colon]
            if digits.isEmpty { throw fail("epoch is empty") }
            guard digits.allSatisfy(\.isASCIIDigit) else { throw fail("epoch is not a number") }
            // dpkg keeps epochs in an int.
            guard let value = Int32(digits) else { throw fail("epoch is too big") }
            epoch = Int(value)
            rest = rest[rest.index(after: colon)...]
            if rest.isEmpty { throw fail("nothing after the epoch colon") }
        }
        var upstream = rest
        var revision: Substring = ""
        // The revision starts after the last hyphen, so upstream parts may contain hyphens.
        if let hyphen = rest.lastIndex(of: "-") {
            upstream = rest[..<hyphen]
            revision = rest[rest.index(after: hyphen)...]
            if revision.isEmpty { throw fail("revision is empty") }
        }
        if upstream.isEmpty { throw fail("upstream version is empty") }
        if let bad = upstream.first(where: { !($0.isASCIIAlphanumeric || ".-+~:".contains($0)) }) {
            throw fail("character '\(bad)' not allowed in upstream version")
        }
        if let bad = revision.first(where: { !($0.isASCIIAlphanumeric || ".+~".contains($0)) }) {
            throw fail("character '\(bad)' not allowed in revision")
        }
        self.epoch = epoch
        self.upstream = String(upstream)
        self.revision = String(revision)
        self.description = text
    }

    public static func < (lhs: DebianVersion, rhs: DebianVersion) -> Bool {
        compare(lhs, rhs) < 0
    }

    public static func == (lhs: DebianVersion, rhs: DebianVersion) -> Bool {
        compare(lhs, rhs) == 0
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(epoch)
        hasher.combine(Self.normalized(upstream))
        hasher.combine(Self.normalized(revision))
    }

    /// Negative, zero or positive as `a` sorts before, equal to, or after `b`.
    public static func compare(_ a: DebianVersion, _ b: DebianVersion) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        let upstream = verrevcmp(a.upstream.utf8, b.upstream.utf8)
        return upstream != 0 ? upstream : verrevcmp(a.revision.utf8, b.revision.utf8)
    }

    /// dpkg's `order()`: digits and the end weigh 0, `~` sorts before everything, letters before the rest.
    private static func order(_ c: UInt8?) -> Int {
        guard let c else { return 0 }
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return 0
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(c)
        case UInt8(ascii: "~"): return -1
        default: return Int(c) + 256
        }
    }

    /// dpkg's `verrevcmp`: alternating non-digit runs (compared by `order`) and digit runs (numerically).
    private static func verrevcmp(_ a: String.UTF8View, _ b: String.UTF8View) -> Int {
        var i = a.startIndex, j = b.startIndex
        func at(_ s: String.UTF8View, _ k: String.Index) -> UInt8? { k < s.endIndex ? s[k] : nil }
        func isDigit(_ c: UInt8?) -> Bool { c.map { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } ?? false }
        while i < a.endIndex || j < b.endIndex {
            while (i < a.endIndex && !isDigit(a[i])) || (j < b.endIndex && !isDigit(b[j])) {
                let ac = order(at(a, i)), bc = order(at(b, j))
                if ac != bc { return ac - bc }
                // Equal orders here mean both are non-digits, not ends (no non-digit weighs 0).
                i = a.index(after: i)
                j = b.index(after: j)
            }
            while at(a, i) == UInt8(ascii: "0") { i = a.index(after: i) }
            while at(b, j) == UInt8(ascii: "0") { j = b.index(after: j) }
            var firstDiff = 0
            while isDigit(at(a, i)) && isDigit(at(b, j)) {
                if firstDiff == 0 { firstDiff = Int(a[i]) - Int(b[j]) }
                i = a.index(after: i)
                j = b.index(after: j)
            }
            if isDigit(at(a, i)) { return 1 }
            if isDigit(at(b, j)) { return -1 }
            if firstDiff != 0 { return firstDiff }
        }
        return 0
    }

    /// A form equal for exactly the strings `verrevcmp` calls equal: leading zeros of each digit run
    /// dropped (keeping one `0`), and a missing final digit run written as `0` ("1a" == "1a0", "" == "0").
    private static func normalized(_ part: String) -> String {
        var result = ""
        var digits = ""
        func flushDigits() {
            let trimmed = digits.drop(while: { $0 == "0" })
            result += trimmed.isEmpty ? "0" : trimmed
            digits = ""
        }
        var inDigits = false
        for c in part {
            if c.isASCIIDigit {
                digits.append(c)
                inDigits = true
            } else {
                if inDigits { flushDigits() }
                inDigits = false
                result.append(c)
            }
        }
        flushDigits()
        return result
    }
}
