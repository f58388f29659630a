//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cpu

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// allocWeights returns n zeroed bytes of anonymous memory outside the Go heap, and the function that
// releases them. The interleaved weights are most of the process's memory; on the Go heap they would
// count as live data, and the collector, which lets garbage grow in proportion to live data, would let
// the short-lived allocations of every token pile up to about as much again before collecting.
func allocWeights(n int) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("allocating %d bytes for weights: %w", n, err)
	}
	return b, func() { _ = unix.Munmap(b) }, nil
}
