import Provisioning
import Testing

@Suite struct InQubeExecutionTests {
    @Test func optionTextsAreParsedStrictly() throws {
        #expect(try InQubeExecution(parsing: "qvm-run") == .qvmRun)
        #expect(try InQubeExecution(parsing: "folder:/r") == .folders(root: "/r", others: [:]))
        #expect(try InQubeExecution(parsing: "folder:/r,core-keys=/k,a=b=c") == .folders(root: "/r", others: ["core-keys": "/k", "a": "b=c"]))
        for (text, message) in [
            ("ssh", "--in-qube must be qvm-run or folder:DIR[,QUBE=DIR…], not 'ssh'"),
            ("folder:", "--in-qube folder: needs the template's folder"),
            ("folder:,k=/k", "--in-qube folder: needs the template's folder"),
            ("folder:/r,core-keys", "--in-qube folder:DIR,QUBE=DIR…: 'core-keys' is not QUBE=DIR"),
            ("folder:/r,=/k", "--in-qube folder:DIR,QUBE=DIR…: '=/k' is not QUBE=DIR"),
        ] {
            #expect(throws: ProvisioningError(.invalidArgument, message)) { try InQubeExecution(parsing: text) }
        }
    }

    @Test func theTemplateFolderStandsForTheManifestsTemplate() throws {
        var manifest = Manifest(components: [.base])
        manifest.names[.core] = "lite-core"
        let executor = try #require(try InQubeExecution(parsing: "folder:/nonexistent").executor(for: manifest) as? FolderExecutor)
        #expect(throws: Never.self) { try executor.checkReaches("lite-core") }
        #expect(throws: ProvisioningError.self) { try executor.checkReaches("core-net") }
    }
}
