package tokstore

import "syscall"

// dontNeed drops b's pages from the process (they stay in the page cache).
func dontNeed(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
