#include "CBuildInfo.h"

// scripts/release writes lq_commit.h (#define LQ_COMMIT "<commit>") beside
// this file for its build and removes it after (docs/packaging.md, "Version").
#if __has_include("lq_commit.h")
#include "lq_commit.h"
#endif
#ifndef LQ_COMMIT
#define LQ_COMMIT "unknown"
#endif

const char *lq_commit(void) { return LQ_COMMIT; }
