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
