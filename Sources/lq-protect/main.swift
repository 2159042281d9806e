import InQubeTool

Tool.main(ProtectTool.self)
