import InQubeTool

Tool.main(SplitFileTool.self)
