//go:build unix

package testutil

import "syscall"

// ProcessCPU is the CPU time this process has used, in seconds (user and system): a benchmark's work
// measured with less noise than the wall clock on a shared machine. It reads 0 where it is unavailable.
func ProcessCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
