import InQubeTool

Tool.main(SplitPasswordTool.self)
