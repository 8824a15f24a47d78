//go:build !linux

package tokstore

// dontNeed is a no-op where the kernel's advice is not wired up: the mapped
// pages then stay resident until the store is closed.
func dontNeed([]byte) {}
