import Foundation
import StrataStore
import StrataTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `strata boot serve` on 127.0.0.1 for the length of a test, serving `home`; stopped when it goes
/// away. `advertise` is the host machines reach it by (10.0.2.2 for qemu's user network); its log
/// (stderr) goes to `log`.
final class BootService: Sendable {
    let process: Process
    let url: String
    let log: String
    private let advertised: String

    init(home: String, initramfs: String, advertise: String? = nil, log: String) throws {
        self.log = log
        advertised = advertise ?? "127.0.0.1"
        process = Process()
        process.executableURL = URL(fileURLWithPath: strataExecutable)
        process.arguments = ["boot", "serve", "--listen", "127.0.0.1:0", "--initramfs", initramfs,
                             "--builder", packageRoot + "/Boot/build-initramfs.sh"] + (advertise.map { ["--advertise", $0] } ?? [])
        process.environment = ProcessInfo.processInfo.environment.merging(["STRATA_HOME": home]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log) ?? FileHandle.standardError
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            line += data
        }
        url = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard url.hasPrefix("http://\(advertised):") else {
            throw StoreError("strata boot serve printed '\(url)': \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }

    /// The service's URL as machines reach it, without `/boot.ipxe`.
    var base: String { url.hasSuffix("/boot.ipxe") ? String(url.dropLast("/boot.ipxe".count)) : url }

    /// A URL of the service as the host reaches it.
    func local(_ url: String) -> String { url.replacingOccurrences(of: "http://\(advertised):", with: "http://127.0.0.1:") }

    var serverLog: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
    }

    deinit { stop() }
}
