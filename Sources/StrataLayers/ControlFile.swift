/// One paragraph of a control file: its fields in file order, each with the line it starts on.
///
/// A multi-line value keeps its continuation lines joined by `\n`, each without its first blank; a
/// ` .` line becomes an empty line, as Debian defines for extended descriptions.
public struct ControlStanza: Sendable {
    public var fields: [(name: String, value: String, line: Int)]
    /// The line the stanza starts on.
    public var line: Int

    /// The value of a field, its name compared case-insensitively.
    public subscript(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func line(of name: String) -> Int? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.line
    }
}

/// The RFC-822-like syntax of Debian control files, used for layer metadata.
public enum ControlFile {
    /// Parses stanzas separated by blank lines. Lines with `#` in column 0 are comments.
    public static func parse(_ text: String, file: String) throws -> [ControlStanza] {
        var stanzas: [ControlStanza] = []
        var current: ControlStanza?
        // Continuation lines of the field being read; joined when the field ends.
        var pending: [String] = []

        func finishField() {
            guard !pending.isEmpty, let last = current?.fields.indices.last else { return }
            current!.fields[last].value += "\n" + pending.joined(separator: "\n")
            pending = []
        }
        func finishStanza() {
            finishField()
            if let stanza = current { stanzas.append(stanza) }
            current = nil
        }

        for (index, line) in splitLines(text).enumerated() {
            let number = index + 1
            if line.hasPrefix("#") { continue }
            if line.allSatisfy(\.isBlank) {
                finishStanza()
                continue
            }
            if line.first!.isBlank {
                guard current != nil else {
                    throw ParseError(file: file, line: number, message: "continuation line before any field")
                }
                let text = line.dropFirst().droppingTrailing(while: \.isBlank)
                pending.append(text == "." ? "" : String(text))
                continue
            }
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  !line[..<colon].contains(where: \.isBlank)
            else {
                throw ParseError(file: file, line: number,
                                 message: "expected 'Field: value' or an indented continuation line, found '\(line)'")
            }
            finishField()
            let name = String(line[..<colon])
            if let first = current?.line(of: name) {
                throw ParseError(file: file, line: number,
                                 message: "duplicate field '\(name)' (first on line \(first))")
            }
            let value = line[line.index(after: colon)...].drop(while: \.isBlank).droppingTrailing(while: \.isBlank)
            if current == nil { current = ControlStanza(fields: [], line: number) }
            current!.fields.append((name: name, value: String(value), line: number))
        }
        finishStanza()
        return stanzas
    }

    /// Renders fields as one paragraph (without the blank line that ends it).
    public static func paragraph(_ fields: [(name: String, value: String)]) -> String {
        fields.map { render(name: $0.name, value: $0.value) }.joined()
    }

    /// Renders one field; the inverse of how `parse` joins continuation lines.
    public static func render(name: String, value: String) -> String {
        let lines = value.split(separator: "\n", omittingEmptySubsequences: false)
        var text = lines[0].isEmpty ? "\(name):" : "\(name): \(lines[0])"
        for line in lines.dropFirst() {
            text += line.isEmpty ? "\n ." : "\n \(line)"
        }
        return text + "\n"
    }
}

/// Splits on `\n` only, so that a `\r` stays in its line (a `\r\n` pair is one `Character`).
func splitLines(_ text: String) -> [Substring] {
    text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { Substring($0) }
}

extension Substring {
    func droppingTrailing(while predicate: (Character) -> Bool) -> Substring {
        var text = self
        while let last = text.last, predicate(last) { text.removeLast() }
        return text
    }
}

extension Character {
    /// Space and tab, as in Debian's syntax; also `\r`, so that CRLF text parses.
    var isBlank: Bool { self == " " || self == "\t" || self == "\r" }
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILowercase: Bool { ("a"..."z").contains(self) }
    var isASCIIAlphanumeric: Bool { isASCII && (isLetter || isNumber) }
}
