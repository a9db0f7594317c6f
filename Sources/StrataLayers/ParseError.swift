import Foundation

/// A syntax or validation error in a control file, layer metadata, relation field, version or LDF.
///
/// Rendered as `file:line: message` (or `file: message` without a line, or just `message` when the
/// text did not come from a file, e.g. a version typed on the command line).
public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        switch (file.isEmpty, line) {
        case (true, _): message
        case (false, let line?): "\(file):\(line): \(message)"
        case (false, nil): "\(file): \(message)"
        }
    }

    /// The same error placed in `file` at `line`, for errors raised by parsers that only see one value.
    func located(file: String, line: Int?) -> ParseError {
        ParseError(file: file, line: line, message: message)
    }
}

extension ParseError: LocalizedError {
    public var errorDescription: String? { description }
}
