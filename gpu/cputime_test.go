package gpu

import "smolchat/internal/testutil"

// processCPU is the CPU time this process has used, in seconds: on lavapipe, whose shaders run on the
// CPU, it measures a kernel's work with less noise than the wall clock on a shared machine.
func processCPU() float64 { return testutil.ProcessCPU() }
