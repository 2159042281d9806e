#ifndef LQ_CBUILDINFO_H
#define LQ_CBUILDINFO_H

/// The commit a build was made from, "unknown" outside scripts/release
/// (docs/packaging.md, "Version").
const char *lq_commit(void);

#endif
