import Foundation
import Testing

@Suite struct QubeCommandTests {
    @Test func lsListsEveryQubeAsJSON() throws {
        let store = try LQ.copy("valid/qubes-liteqube.xml")
        let result = try LQ.run("ls", "--store", store.path, "--json")
        #expect(result.status == 0)
        let rows = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        #expect(rows?.count == 29)
        let work = rows?.first { $0["name"] as? String == "work" }
        #expect(work?["class"] as? String == "AppVM")
        #expect(work?["template"] as? String == "fedora-40-xfce")
        #expect(work?["netvm"] as? String == "fw-net")
        #expect(work?["label"] as? String == "blue")
        #expect(work?["state"] as? String == "Halted")
        #expect(try LQ.run("ls", "--store", store.path).stdout.hasPrefix("NAME"))
    }

    @Test func prefsGetSetAndReset() throws {
        let store = try LQ.copy("valid/qubes-liteqube.xml").path
        #expect(try LQ.run("prefs", "--store", store, "work", "netvm").stdout == "fw-net\n")
        #expect(try LQ.run("prefs", "--store", store, "work", "netvm", "").status == 0)
        #expect(try LQ.run("prefs", "--store", store, "work", "netvm").stdout == "\n")
        #expect(try LQ.run("prefs", "--store", store, "-D", "work", "netvm").status == 0)
        #expect(try LQ.run("prefs", "--store", store, "work", "netvm").stdout == "fw-net\n")
        #expect(try LQ.run("prefs", "--store", store, "--global", "default_netvm").stdout == "fw-net\n")
        let refused = try LQ.run("prefs", "--store", store, "work", "memory", "0")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("work: QubesPropertyValueError: memory must be positive"))
        let listing = try LQ.run("prefs", "--store", store, "work")
        #expect(listing.stdout.contains("netvm"))
        #expect(try LQ.run("prefs", "--store", store).status == 2)
        #expect(try LQ.run("prefs", "--store", store, "--socket", "/x", "work").status == 2)
    }

    @Test func featuresAndTags() throws {
        let store = try LQ.copy("valid/qubes-liteqube.xml").path
        #expect(try LQ.run("features", "--store", store, "work", "service.cups", "1").status == 0)
        #expect(try LQ.run("features", "--store", store, "work", "service.cups").stdout == "1\n")
        #expect(try LQ.run("features", "--store", store, "--unset", "work", "service.cups").status == 0)
        #expect(try LQ.run("features", "--store", store, "work", "service.cups").status == 1)
        #expect(try LQ.run("tags", "--store", store, "work", "add", "liteqube").status == 0)
        #expect(try LQ.run("tags", "--store", store, "work").stdout.contains("liteqube\n"))
        #expect(try LQ.run("tags", "--store", store, "work", "del", "liteqube").status == 0)
        #expect(try LQ.run("tags", "--store", store, "work", "del", "liteqube").status == 1)
        #expect(try LQ.run("tags", "--store", store, "--json", "work").stdout.hasPrefix("["))
        #expect(try LQ.run("store", "check", "--strict", store).status == 0)
    }

    @Test func unreachableSocketIsAFinding() throws {
        let result = try LQ.run("ls", "--socket", "/nonexistent/qubesd.sock")
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/qubesd.sock"))
    }
}
