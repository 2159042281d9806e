import QubesStore
import Testing
@testable import Shards

@Suite struct ShardFileTests {
    @Test(arguments: ["s0", "s1"])
    func fixtureRoundTripsByteForByte(shard: String) throws {
        let bytes = try Fixtures.bytes("default-2x2/\(shard)/domains.xml")
        let file = try ShardFile.parse(bytes, file: "\(shard)/domains.xml")
        #expect(file.name == shard)
        #expect(file.domains.count == 2)
        #expect(file.notices.isEmpty)
        #expect(try file.bytes() == bytes)
    }

    @Test func emptyShardWritesEmptyDomainsAndNoPools() throws {
        let text = String(decoding: try ShardFile(name: "empty").bytes(), as: UTF8.self)
        #expect(text == "<shard version=\"1\" name=\"empty\">\n  <domains/>\n</shard>\n")
    }

    @Test func storedQIDsAreIgnoredAndReported() throws {
        let text = """
            <shard version="1" name="x"><domains><domain id="domain-5" class="AppVM"><properties>
            <property name="name">a</property><property name="qid">5</property><property name="uuid">u</property>
            </properties></domain></domains></shard>
            """
        let file = try ShardFile.parse(Array(text.utf8), file: "x/domains.xml")
        #expect(file.notices.map(\.field) == ["id", "qid"])
        #expect(file.notices.allSatisfy { $0.qube == "a" && $0.file == "x/domains.xml" })
        #expect(!String(decoding: try file.bytes(), as: UTF8.self).contains("qid"))
    }

    @Test func unknownElementsAreRefusedWithFileAndQube() throws {
        let text = """
            <shard version="1" name="x"><domains><domain class="AppVM"><properties>
            <property name="name">a</property><property name="uuid">u</property></properties><evil/></domain></domains></shard>
            """
        #expect {
            try ShardFile.parse(Array(text.utf8), file: "x/domains.xml")
        } throws: { error in
            let issue = error as! ShardIssue
            return issue.file == "x/domains.xml" && issue.field == "evil" && issue.location != nil
        }
    }

    /// Every class either is refused as the file is read, naming file, line and class, or its canonical
    /// bytes parse again to the same bytes (an AdminVM's fixed name could not be written back).
    @Test(arguments: VMClass.allCases)
    func everyClassIsRefusedAtParseOrRoundTrips(_ vmClass: VMClass) throws {
        let text = """
            <shard version="1" name="x"><domains>
            <domain class="\(vmClass.rawValue)"><properties>
            <property name="name">q</property><property name="uuid">u</property></properties></domain></domains></shard>
            """
        guard ShardSanitizer.allowedClasses.contains(vmClass) else {
            #expect {
                try ShardFile.parse(Array(text.utf8), file: "x/domains.xml")
            } throws: { error in
                let issue = error as! ShardIssue
                return issue.file == "x/domains.xml" && issue.location?.line == 2 && issue.field == "class"
                    && issue.value == vmClass.rawValue && issue.message.contains("only AppVM, DispVM, TemplateVM and StandaloneVM")
                    && issue.description.hasPrefix("x/domains.xml:")
            }
            return
        }
        let bytes = try ShardFile.parse(Array(text.utf8), file: "x/domains.xml").bytes()
        #expect(try ShardFile.parse(bytes, file: "x/domains.xml").bytes() == bytes)
    }
}

@Suite struct ShardFileLimitTests {
    @Test func tooManyQubesInOneFileIsRefused() throws {
        let domain = "<domain class=\"AppVM\"><properties><property name=\"name\">a</property><property name=\"uuid\">u</property></properties></domain>"
        let text = "<shard version=\"1\" name=\"x\"><domains>" + String(repeating: domain, count: ShardFile.maxDomains + 1) + "</domains></shard>"
        #expect {
            try ShardFile.parse(Array(text.utf8), file: "x/domains.xml")
        } throws: { error in
            (error as! ShardIssue).message.contains("more than the limit of \(ShardFile.maxDomains)")
        }
    }
}

@Suite struct FileDriverCheckTests {
    @Test func checkRecommendsFileReflinkForAFilePool() throws {
        let text = try Fixtures.folder.text("default-2x2/s0/domains.xml")
        let reflink = shardSource(text)
        let file = shardSource(text.replacingOccurrences(of: "driver=\"file-reflink\"", with: "driver=\"file\""))
        let found = ShardCheck.check(try file.shard.get()).filter { $0.field == "pool.s0-pool.driver" }
        #expect(found.map(\.value) == ["file"] && found.first?.message.contains("file-reflink") == true)
        #expect(ShardCheck.check(try reflink.shard.get()).allSatisfy { $0.field != "pool.s0-pool.driver" })
    }
}
