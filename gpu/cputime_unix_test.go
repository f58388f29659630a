//go:build unix

package gpu

import "syscall"

// processCPU is the CPU time this process has used, in seconds: on lavapipe, whose shaders run on the
// CPU, it measures a kernel's work with less noise than the wall clock on a shared machine.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
