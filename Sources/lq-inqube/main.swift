import InQubeTool

// The template's one program for lq-protect, lq-splitfile, lq-splitpassword, lq-splitssh, lq-storage and lq-torsetap (links to it).
Tool.mainByName()
