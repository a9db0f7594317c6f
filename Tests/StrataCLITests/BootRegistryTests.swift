import Foundation
import StrataStore
import StrataTestSupport
import Testing

/// `strata boot register|list|unregister`: the MAC bindings the boot service looks appliances up by.
@Suite struct BootRegistryTests {
    @Test func macAddressesBindUnbindAndListWithTheirAppliances() throws {
        let fleet = try FleetWorkspace("boot-registry", layers: [TemplateTests.layers[0]])
        let strata = fleet.workspace
        expectSuccess(try strata.strata("template", "create", "web", try fleet.ldf("web", ["main/base 1"])))
        expectSuccess(try strata.strata("provision", "a1", "a2", "a3", "--template", "web"))

        // Any case, ':' or '-': kept lowercase with ':'.
        #expect(expectSuccess(try strata.strata("boot", "register", "52-54-00-AB-CD-01", "a1")).stdout == "52:54:00:ab:cd:01\ta1\n")
        expectSuccess(try strata.strata("boot", "register", "52:54:00:ab:cd:02", "a2"))
        expectSuccess(try strata.strata("boot", "register", "52:54:00:ab:cd:01", "a1")) // the same binding again: no change
        #expect(expectSuccess(try strata.strata("boot", "list")).stdout == "52:54:00:ab:cd:01\ta1\tweb\n52:54:00:ab:cd:02\ta2\tweb\n")
        let json = try JSONSerialization.jsonObject(with: Data(expectSuccess(try strata.strata("boot", "list", "--json")).stdout.utf8)) as? [[String: String]]
        #expect(json == [["mac": "52:54:00:ab:cd:01", "name": "a1", "template": "web"], ["mac": "52:54:00:ab:cd:02", "name": "a2", "template": "web"]])
        // The boot service's lookup sees the binding.
        #expect(expectSuccess(try strata.strata("appliance", "list", "--mac", "52:54:00:AB:CD:02")).stdout.hasPrefix("a2\tweb\t52:54:00:ab:cd:02\t"))

        func refused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try strata.strata(arguments)
            #expect(result.status != 0, "\(arguments) succeeded", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)", sourceLocation: sourceLocation)
        }
        try refused(["boot", "register", "52:54:00:ab:cd", "a3"], "MAC '52:54:00:ab:cd': not a MAC address")
        try refused(["boot", "register", "52:54:00:ab:cd:0g", "a3"], "MAC '52:54:00:ab:cd:0g': not a MAC address")
        try refused(["boot", "register", "01:00:5e:00:00:01", "a3"], "MAC '01:00:5e:00:00:01': a group (multicast or broadcast) address")
        try refused(["boot", "register", "ff:ff:ff:ff:ff:ff", "a3"], "a group (multicast or broadcast) address")
        try refused(["boot", "register", "00:00:00:00:00:00", "a3"], "the all-zero address")
        try refused(["boot", "register", "52:54:00:ab:cd:03", "nobody"], "no appliance 'nobody'")
        try refused(["boot", "register", "52:54:00:ab:cd:01", "a3"], "MAC 52:54:00:ab:cd:01 is bound to appliance 'a1' already")
        try refused(["boot", "register", "52:54:00:ab:cd:09", "a1"], "appliance 'a1' is bound to MAC 52:54:00:ab:cd:01 already")
        try refused(["boot", "unregister", "52:54:00:ab:cd:03"], "MAC 52:54:00:ab:cd:03 is not bound to any appliance")
        try refused(["boot", "unregister", "nonsense"], "MAC 'nonsense': not a MAC address")
        #expect(expectSuccess(try strata.strata("boot", "list")).stdout.split(separator: "\n").count == 2, "refusals changed nothing")

        // Unbinding keeps the appliance; its MAC can then name another one.
        #expect(expectSuccess(try strata.strata("boot", "unregister", "52:54:00:AB:CD:01")).stdout == "52:54:00:ab:cd:01\ta1\n")
        expectSuccess(try strata.strata("boot", "register", "52:54:00:ab:cd:01", "a3"))
        #expect(expectSuccess(try strata.strata("boot", "list")).stdout == "52:54:00:ab:cd:01\ta3\tweb\n52:54:00:ab:cd:02\ta2\tweb\n")
        #expect(expectSuccess(try strata.strata("appliance", "list")).stdout.contains("a1\tweb\t-\tnot mounted"))
    }
}

/// `strata boot show`: what the boot service answers a MAC, made from the home as it is now.
@Suite struct BootAnswerTests {
    @Test func aRegisteredMACGetsItsKernelLayerAndDescriptionAndAnUnknownOneIsRefused() throws {
        let fleet = try FleetWorkspace("boot-show", layers: [
            ("base", "1", ["etc/os-release": "strata\n", "sbin/init": "#!/bin/sh\n"]),
            ("kernel", "1", ["boot/vmlinuz-6.1.0-test": "a kernel image\n", "lib/modules/6.1.0-test/modules.order": ""]),
            ("kernel", "2", ["boot/vmlinuz-6.1.1-test": "the next kernel\n", "lib/modules/6.1.1-test/modules.order": ""]),
        ])
        let strata = fleet.workspace
        let template = try fleet.ldf("web", ["main/base 1", "main/kernel 1"])
        expectSuccess(try strata.strata("template", "create", "web", template))
        expectSuccess(try strata.strata("provision", "a1", "--template", "web", "--mac", "52:54:00:00:00:0a"))
        let service = "http://10.0.2.2:8080"

        func blobURL(_ contents: String) throws -> String {
            let digest = try shell("printf '%s' '\(contents)' | sha256sum").prefix(64)
            return "\(service)/repos/main/objects/sha256/\(digest.prefix(2))/\(digest.dropFirst(2))"
        }
        let script = expectSuccess(try strata.strata("boot", "show", "52-54-00-00-00-0A", "--service", service)).stdout
        #expect(script.hasPrefix("#!ipxe\n"))
        #expect(script.contains("kernel \(try blobURL("a kernel image\n")) console=ttyS0 quiet strata.service=\(service) strata.appliance=a1 BOOTIF=01-52-54-00-00-00-0a\n"), "\(script)")
        #expect(script.contains("initrd \(service)/initramfs.cpio.gz\ninitrd \(service)/modules.cpio.gz?appliance=a1\nboot\n"), "\(script)")

        let json = try JSONSerialization.jsonObject(with: Data(expectSuccess(try strata.strata("boot", "show", "52:54:00:00:00:0a", "--service", service, "--json")).stdout.utf8)) as? [String: Any]
        #expect(json?["appliance"] as? String == "a1")
        #expect(json?["ldf"] as? String == "@web\n")
        #expect((json?["templates"] as? [String: String])?["web"] == (try String(contentsOfFile: fleet.home + "/templates/web.ldf", encoding: .utf8)))
        #expect((json?["repositories"] as? [[String: String]]) == [["name": "main", "url": "\(service)/repos/main/"]])
        #expect(json?["initProgram"] as? String == "/sbin/init")

        // A kernel upgrade is an LDF edit: the next answer boots the new kernel layer's image.
        expectSuccess(try strata.strata("ldf", "add", fleet.home + "/templates/web.ldf", "main/kernel=2"))
        #expect(expectSuccess(try strata.strata("boot", "show", "52:54:00:00:00:0a", "--service", service)).stdout.contains("kernel \(try blobURL("the next kernel\n")) "))

        let unknown = try strata.strata("boot", "show", "52:54:00:00:00:0b", "--service", service)
        #expect(unknown.status != 0 && unknown.stderr.contains("MAC 52:54:00:00:00:0b is not registered: bind it to an appliance with 'strata boot register 52:54:00:00:00:0b NAME'"), "\(unknown.stderr)")
        expectSuccess(try strata.strata("template", "create", "bare", try fleet.ldf("bare", ["main/base 1"])))
        expectSuccess(try strata.strata("provision", "a2", "--template", "bare", "--mac", "52:54:00:00:00:0c"))
        let kernelless = try strata.strata("boot", "show", "52:54:00:00:00:0c", "--service", service)
        #expect(kernelless.stderr.contains("appliance 'a2' composes no kernel: none of its layers has /boot/vmlinuz-*"), "\(kernelless.stderr)")
    }
}

/// `strata boot mount`, the initramfs's step, reads the boot service's answer as an attacker's: a
/// description it refuses leaves nothing written and nothing mounted, and says which field is wrong.
@Suite struct BootMountTests {
    static let mac = "52:54:00:00:00:01"

    static func description(_ changes: [String: Any] = [:]) throws -> String {
        var fields: [String: Any] = [
            "appliance": "a1", "mac": mac, "template": "web", "kernel": "http://10.0.2.2:1/k", "initrds": [String](),
            "commandLine": "", "initProgram": "/sbin/init", "ldf": "@web\n", "templates": ["web": "main/base 1\n"],
            "repositories": [["name": "main", "url": "http://10.0.2.2:1/repos/main/"]],
        ]
        fields.merge(changes) { $1 }
        return String(decoding: try JSONSerialization.data(withJSONObject: fields), as: UTF8.self)
    }

    @Test func aHostileRefusingOrAbsentServiceMountsNothing() throws {
        let scratch = try TemporaryDirectory("boot-mount")
        let home = scratch.path + "/disk/strata", root = scratch.path + "/root"
        try makeDirectories(root)
        func refused(status: String = "200 OK", _ body: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let server = try ScriptedHTTPServer { request in
                #expect(request.path == "boot?mac=\(Self.mac)" && request.headers["accept"] == "application/json", "\(request)")
                return .init("HTTP/1.1 \(status)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)", then: .close)
            }
            let result = try execute(strataExecutable, ["boot", "mount", server.url, root, "--mac", Self.mac, "--home", home])
            #expect(result.status != 0, sourceLocation: sourceLocation)
            #expect(result.stderr.contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: home + "/appliances"), "nothing written", sourceLocation: sourceLocation)
            #expect(!FileManager.default.fileExists(atPath: home + "/boot/description.json"), sourceLocation: sourceLocation)
        }
        try refused(try Self.description(["appliance": "../../etc"]), "appliance: '../../etc' is not an appliance name")
        try refused(try Self.description(["templates": ["../x": "main/base 1\n"]]), "templates: invalid template name '../x'")
        try refused(try Self.description(["repositories": [["name": "main", "url": "file:///etc"]]]), "repositories: 'main': 'file:///etc' is not an http(s) URL")
        try refused(try Self.description(["initProgram": "sbin/init"]), "initProgram: 'sbin/init' is not an absolute path")
        try refused(try Self.description(["mac": "52:54:00:00:00:02"]), "a description for MAC 52:54:00:00:00:02, not 52:54:00:00:00:01")
        try refused("{\"appliance\": 1}", "not a boot description")
        try refused(status: "403 Forbidden", "MAC 52:54:00:00:00:01 is not registered\n", "the boot service refused this machine (403 Forbidden): MAC 52:54:00:00:00:01 is not registered")

        let silent = try execute(strataExecutable, ["boot", "mount", "http://127.0.0.1:\(try freePort())", root, "--mac", Self.mac, "--home", home])
        #expect(silent.status != 0)
        #expect(silent.stderr.contains("the boot service is unreachable") && silent.stderr.contains("this disk holds no description from an earlier boot"), "\(silent.stderr)")
    }
}

/// `strata boot serve`, the one HTTP service a fleet boots from, asked with curl as iPXE and the
/// initramfs ask it: the chain, a registered MAC's script and description, what they name, the home's
/// repositories as static files, and an unknown MAC refused on its console and in the log.
@Suite struct BootServeTests {
    @Test func itChainsAnswersARegisteredMACServesWhatItsScriptNamesAndRefusesAnUnknownOne() throws {
        let fleet = try FleetWorkspace("boot-serve", layers: [
            ("base", "1", ["etc/os-release": "strata\n", "sbin/init": "#!/bin/sh\n"]),
            ("kernel", "1", ["boot/vmlinuz-6.1.0-test": "a kernel image\n", "lib/modules/6.1.0-test/modules.order": ""]),
        ])
        let strata = fleet.workspace
        expectSuccess(try strata.strata("template", "create", "web", try fleet.ldf("web", ["main/base 1", "main/kernel 1"])))
        expectSuccess(try strata.strata("provision", "a1", "--template", "web", "--mac", "52:54:00:00:00:0a"))
        let initramfs = strata.scratch.path + "/initramfs.cpio.gz"
        try AtomicFile.write("an initramfs\n", to: initramfs)
        let service = try BootService(home: fleet.home, initramfs: initramfs, log: strata.scratch.path + "/serve.log")
        let base = service.base
        #expect(base.hasPrefix("http://127.0.0.1:") && service.url == base + "/boot.ipxe", "\(service.url)")
        func get(_ path: String, accept: String? = nil) throws -> String {
            try shell("curl -s -f \(accept.map { "-H 'Accept: \($0)' " } ?? "")'\(path.hasPrefix("http") ? path : base + path)'")
        }

        #expect(try get("/boot.ipxe") == "#!ipxe\necho Strata: asking \(base) for this machine's appliance (${netX/mac})\nchain \(base)/boot?mac=${netX/mac}\n")

        let script = try get("/boot?mac=52%3A54%3A00%3A00%3A00%3A0A")
        #expect(script.hasPrefix("#!ipxe\n"), "\(script)")
        #expect(script.contains(" console=ttyS0 quiet strata.service=\(base) strata.appliance=a1 BOOTIF=01-52-54-00-00-00-0a\n"), "\(script)")
        #expect(script.hasSuffix("initrd \(base)/initramfs.cpio.gz\ninitrd \(base)/modules.cpio.gz?appliance=a1\nboot\n"), "\(script)")
        let kernel = script.split(separator: "\n").first { $0.hasPrefix("kernel ") }?.split(separator: " ")[1]
        #expect(kernel?.hasPrefix(base + "/repos/main/objects/sha256/") == true, "\(script)")
        #expect(try get(String(kernel ?? "")) == "a kernel image\n")
        #expect(try get("/initramfs.cpio.gz") == "an initramfs\n")

        let json = try JSONSerialization.jsonObject(with: Data(try get("/boot?mac=52:54:00:00:00:0a", accept: "application/json").utf8)) as? [String: Any]
        #expect(json?["appliance"] as? String == "a1")
        #expect(json?["kernel"] as? String == kernel.map(String.init))
        #expect(json?["ldf"] as? String == "@web\n")
        #expect((json?["templates"] as? [String: String])?["web"] == (try String(contentsOfFile: fleet.home + "/templates/web.ldf", encoding: .utf8)))
        #expect((json?["repositories"] as? [[String: String]]) == [["name": "main", "url": "\(base)/repos/main/"]])

        // The repository as static content: every file of it, byte for byte.
        for file in try shell("cd '\(strata.repository)' && find . -type f | sort").split(separator: "\n").map({ $0.dropFirst(2) }) {
            #expect(try shell("curl -s -f '\(base)/repos/main/\(file)' | cmp - '\(strata.repository)/\(file)' && echo same") == "same\n", "\(file)")
        }

        let unknown = try get("/boot?mac=52:54:00:00:00:0b")
        #expect(unknown.hasPrefix("#!ipxe\necho Strata: this machine cannot boot: MAC 52:54:00:00:00:0b is not registered: bind it to an appliance with 'strata boot register 52:54:00:00:00:0b NAME'\n"), "\(unknown)")
        #expect(unknown.contains("sleep 3600\ngoto wait\n"), "\(unknown)")
        #expect(try shell("curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' '\(base)/boot?mac=52:54:00:00:00:0b'") == "403")
        service.stop()
        #expect(service.serverLog.contains("strata boot serve: refused a machine: MAC 52:54:00:00:00:0b is not registered"), "\(service.serverLog)")
    }
}
