import Foundation
import StrataLayers
import Synchronization

/// Runs a program (no shell), returning its standard output; a non-zero exit is an error quoting
/// the command and its stderr.
public func runProgram(_ executable: String, _ arguments: [String], directory: String? = nil) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    let command = ([executable] + arguments).joined(separator: " ")
    do { try process.run() } catch { throw LayerError("cannot run \(command): \(error.localizedDescription)") }
    // Drain stderr beside stdout so a chatty child cannot block on a full pipe.
    let errorText = Mutex(Data())
    let reader = Thread { errorText.withLock { $0 = errors.fileHandleForReading.readDataToEndOfFile() } }
    reader.start()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !reader.isFinished { usleep(500) }
    guard process.terminationStatus == 0 else {
        let message = String(decoding: errorText.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        throw LayerError("\(command) failed (exit \(process.terminationStatus)): \(message)")
    }
    return Array(data)
}
