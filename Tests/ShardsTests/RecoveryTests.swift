import QubesStore
import Testing
@testable import Shards

/// A one-qube shard `r` holding `qube` of class `vmClass` with `properties`.
func oneQubeShard(
    _ qube: String = "lost", vmClass: String = "AppVM", properties: [String: String], uuid: String = "11111111-2222-4333-8444-555555555555",
    volumes: String? = nil
) -> String {
    let props = properties.sorted { $0.key < $1.key }.map { "<property name=\"\($0.key)\">\($0.value)</property>" }.joined()
    let volumeConfig = volumes ?? """
        <volume name="root" pool="varlibqubes" vid="appvms/\(qube)/root" revisions_to_keep="1" rw="True" save_on_stop="False" snap_on_start="True" size="10737418240" source="vm-templates/fedora-40-xfce/root"/>
        <volume name="private" pool="r-pool" vid="appvms/\(qube)/private" revisions_to_keep="1" rw="True" save_on_stop="True" snap_on_start="False" size="2147483648"/>
        <volume name="volatile" pool="r-pool" vid="appvms/\(qube)/volatile" revisions_to_keep="1" rw="True" save_on_stop="False" snap_on_start="False" size="10737418240"/>
        <volume name="kernel" pool="linux-kernel" vid="6.6.63-1.fc37" revisions_to_keep="0" rw="False" save_on_stop="False" snap_on_start="False"/>
        """
    return """
        <shard version="1" name="r"><pools><pool name="r-pool" dir_path="/run/shards/r/pool" driver="file-reflink" revisions_to_keep="1" ephemeral_volatile="False"/></pools>
        <domains><domain class="\(vmClass)"><properties><property name="label">red</property><property name="name">\(qube)</property>
        <property name="uuid">\(uuid)</property>\(props)</properties><features/><tags/>
        <volume-config>\(volumeConfig)</volume-config></domain></domains></shard>
        """
}

@Suite struct RecoveryTests {
    func merge(_ text: String) throws -> MergeResult {
        let (main, _) = try Fixtures.default2x2()
        return try ShardMerge.merge(main: main, shards: [shardSource(text)], options: testOptions())
    }

    @Test(arguments: [("netvm", ""), ("default_dispvm", "")])
    func missingReferenceIsSetToNone(property: String, replacement: String) throws {
        let result = try merge(oneQubeShard(properties: ["template": "fedora-40-xfce", property: "vpn-gone"]))
        let qube = try #require(result.store["lost"])
        #expect(qube.properties[property] == replacement)
        let rationale = try #require(qube.features["prohibit-start"])
        #expect(rationale.contains("vpn-gone") && rationale.contains(property))
        #expect(result.report.shards[0].recoveries == [ShardChange(qube: "lost", field: "property." + property, old: "vpn-gone", new: replacement)])
        #expect(try XMLWriter.write(Store.load(xml: result.bytes).store) == result.bytes)
    }

    @Test func missingTemplateFollowsTheGlobalDefaultTemplate() throws {
        let text = oneQubeShard(properties: ["template": "fedora-38"]).replacingOccurrences(
            of: "vm-templates/fedora-40-xfce/root", with: "vm-templates/fedora-38/root")
        let result = try merge(text)
        let qube = try #require(result.store["lost"])
        #expect(qube.properties["template"] == "fedora-40-xfce")
        #expect(qube.volumes.first { $0.name == "root" }?.source == "vm-templates/fedora-40-xfce/root")
        #expect(qube.features["prohibit-start"]?.contains("fedora-38") == true)
    }

    @Test func missingDispVMTemplateFollowsTheDisposableDefault() throws {
        let text = oneQubeShard(vmClass: "DispVM", properties: ["template": "gone-dvm"], volumes: """
            <volume name="root" pool="varlibqubes" vid="appvms/lost/root" revisions_to_keep="1" rw="True" save_on_stop="False" snap_on_start="True" size="10737418240" source="vm-templates/gone/root"/>
            <volume name="private" pool="varlibqubes" vid="appvms/lost/private" revisions_to_keep="1" rw="True" save_on_stop="False" snap_on_start="True" size="2147483648" source="appvms/gone-dvm/private"/>
            <volume name="volatile" pool="r-pool" vid="appvms/lost/volatile" revisions_to_keep="1" rw="True" save_on_stop="False" snap_on_start="False" size="10737418240"/>
            <volume name="kernel" pool="linux-kernel" vid="6.6.63-1.fc37" revisions_to_keep="0" rw="False" save_on_stop="False" snap_on_start="False"/>
            """)
        let result = try merge(text)
        let qube = try #require(result.store["lost"], "\(result.report.shards[0].skipped)")
        #expect(qube.properties["template"] == "default-dvm")
        #expect(qube.volumes.first { $0.name == "private" }?.source == "appvms/default-dvm/private")
        #expect(qube.features["prohibit-start"]?.contains("gone-dvm") == true)
    }

    @Test func dispVMWithoutADisposableDefaultIsNotMerged() throws {
        let (main, _) = try Fixtures.default2x2()
        var noDefault = main
        noDefault.globalProperties["default_dispvm"] = nil
        let text = oneQubeShard(vmClass: "DispVM", properties: ["template": "gone-dvm"])
        let result = try ShardMerge.merge(main: noDefault, shards: [shardSource(text)], options: testOptions())
        #expect(result.report.shards[0].merged.isEmpty)
        #expect(result.report.shards[0].skipped.first?.value == "gone-dvm")
    }

    @Test func dom0PrivilegedReferencesAreResetBySanitizing() throws {
        let result = try merge(oneQubeShard(properties: [
            "template": "fedora-40-xfce", "guivm": "sys-gui", "audiovm": "sys-audio", "management_dispvm": "x",
        ]))
        let qube = try #require(result.store["lost"])
        #expect(qube.properties["guivm"] == nil && qube.properties["audiovm"] == nil && qube.properties["management_dispvm"] == nil)
        #expect(Set(result.report.shards[0].changes.map(\.field)) == ["property.guivm", "property.audiovm", "property.management_dispvm"])
    }

    @Test(arguments: ["guivm", "audiovm", "management_dispvm"])
    func missingDom0PrivilegeTargetStaysAtItsDefaultWithProhibitStart(property: String) throws {
        let result = try merge(oneQubeShard(properties: ["template": "fedora-40-xfce", property: "sys-gone"]))
        let qube = try #require(result.store["lost"])
        #expect(qube.properties[property] == nil)
        #expect(qube.features["prohibit-start"]?.contains("sys-gone") == true)
        #expect(result.report.shards[0].recoveries == [ShardChange(qube: "lost", field: "property." + property, old: "sys-gone", new: nil)])
    }

    @Test func referenceToAnotherShardsQubeIsRecovered() throws {
        let (main, shards) = try Fixtures.default2x2()
        let text = oneQubeShard(properties: ["template": "fedora-40-xfce", "netvm": "work"])
        let result = try ShardMerge.merge(main: main, shards: shards + [shardSource(text)], options: testOptions())
        #expect(result.store["lost"]?.properties["netvm"] == "")
        #expect(result.store["lost"]?.features["prohibit-start"] != nil)
    }
}
