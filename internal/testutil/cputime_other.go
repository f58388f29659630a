//go:build !unix

package testutil

// ProcessCPU is unavailable here: it reads 0, and so do the benchmarks' CPU-time metrics.
func ProcessCPU() float64 { return 0 }
