import InQubeTool

// The template's one program for lq-protect, lq-splitfile and lq-splitpassword (links to it).
Tool.mainByName()
