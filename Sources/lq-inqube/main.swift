import InQubeTool

// The template's one program for lq-protect, lq-splitfile, lq-splitpassword and lq-torsetap (links to it).
Tool.mainByName()
