//go:build !linux && !darwin && !windows

package engine

// physicalMemory is the machine's memory in bytes, 0 when unknown (not asked on this system: the KV
// budget's default then ignores it).
func physicalMemory() uint64 { return 0 }
