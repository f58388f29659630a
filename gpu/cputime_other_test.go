//go:build !unix

package gpu

// processCPU is unavailable here: the benchmark's CPU-time metric reads 0.
func processCPU() float64 { return 0 }
