import ArgumentParser
import Foundation
import Logging
import StrataBoot
import StrataLayers
import StrataServer
import Synchronization

extension BootCommand {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The boot service: iPXE scripts and descriptions by MAC, the initramfs, each appliance's kernel modules, and the home's repositories.",
            discussion: """
                One HTTP port. GET /boot.ipxe (iPXE's first request, named by DHCP's bootfile) chains to /boot?mac=MAC, \
                which answers the registered appliance's iPXE script (its kernel from its own kernel layer, the initramfs, \
                its kernel's modules, a command line naming this service) or, with 'Accept: application/json', its \
                description (see 'strata boot show'). An unregistered MAC gets a script that prints why and waits, and a \
                log line on stderr. /initramfs.cpio.gz is --initramfs (built by Boot/build-initramfs.sh); \
                /modules.cpio.gz?appliance=NAME the modules of NAME's kernel layer, made once per kernel layer with \
                --builder; /repos/NAME/ each local repository of the home, as static files. Prints its URL on stdout.
                """)
        @OptionGroup var options: HomeOptions
        @Option(help: "HOST:PORT to listen on (port 0 picks one).") var listen = "127.0.0.1:8080"
        @Option(help: "The host name or address the machines reach this service by (default: the listening host; 10.0.2.2 for qemu's user network).")
        var advertise: String?
        @Option(help: "The initramfs to serve (Boot/build-initramfs.sh OUT --strata BINARY).") var initramfs: String
        @Option(help: "Boot/build-initramfs.sh, which makes each kernel layer's modules archive.") var builder: String

        func run() throws {
            let home = options.strataHome
            guard FileManager.default.isReadableFile(atPath: initramfs) else { throw LayerError("--initramfs \(initramfs): no such file") }
            guard FileManager.default.isReadableFile(atPath: builder) else { throw LayerError("--builder \(builder): no such file") }
            var logger = Logger(label: "strata-boot") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .info
            var server = try HTTPServer(listen: listen, logger: logger)
            for (name, location) in try home.repositories() where !location.hasPrefix("http://") && !location.hasPrefix("https://") {
                let repository = try home.repository(name)
                try server.serveDirectory(repository.path, at: BootAnswers.repositoryPath(name))
            }
            try server.serveFile(initramfs, at: BootAnswers.initramfsPath, contentType: "application/octet-stream")
            let service = Service(home: home)
            let advertised = advertise
            try server.get(BootAnswers.chainPath) { _ in
                ServedResponse(contentType: "text/plain", text: try service.answers().chainScript)
            }
            try server.get(BootAnswers.bootPath) { request in
                let mac = Self.parameter("mac", in: request.query) ?? ""
                switch try service.answers().answer(mac: mac) {
                case .appliance(let description):
                    if request.header("Accept").map({ $0.contains("application/json") }) == true {
                        return ServedResponse(contentType: "application/json", body: Array(try JSONEncoder().encode(description)))
                    }
                    return ServedResponse(contentType: "text/plain", text: BootAnswers.script(description))
                case .refused(let reason):
                    printError("strata boot serve: refused a machine: \(reason)")
                    if request.header("Accept").map({ $0.contains("application/json") }) == true {
                        return ServedResponse(status: 403, contentType: "text/plain", text: reason + "\n")
                    }
                    return ServedResponse(contentType: "text/plain", text: BootAnswers.refusalScript(reason))
                }
            }
            let modules = KernelModules(home: home, builder: builder)
            try server.get(BootAnswers.modulesPath) { request in
                let name = Self.parameter("appliance", in: request.query) ?? ""
                let archive = try modules.archive(forAppliance: name, answers: try service.answers())
                return ServedResponse(contentType: "application/octet-stream", body: Array(try Data(contentsOf: URL(fileURLWithPath: archive))))
            }
            try server.run { address in
                let port = address.split(separator: ":").last.map(String.init) ?? ""
                let host = advertised ?? String(address.dropLast(port.count + 1))
                let url = "http://\(host):\(port)"
                service.listening(at: url)
                FileHandle.standardOutput.write(Data((url + BootAnswers.chainPath + "\n").utf8))
            }
        }

        /// The answers of the service, made once its port is bound and so its URL known.
        final class Service: Sendable {
            let home: StrataHome
            private let url = Mutex<String?>(nil)

            init(home: StrataHome) { self.home = home }

            func listening(at url: String) { self.url.withLock { $0 = url } }

            func answers() throws -> BootAnswers {
                guard let url = url.withLock({ $0 }) else { throw LayerError("not listening yet") }
                return BootAnswers(home: home, baseURL: url)
            }
        }

        /// A query's value by name (`mac=52:54:…`), percent-decoded.
        static func parameter(_ name: String, in query: String) -> String? {
            query.split(separator: "&").lazy.compactMap { pair -> String? in
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, parts[0] == name else { return nil }
                return String(parts[1]).removingPercentEncoding
            }.first
        }
    }
}
