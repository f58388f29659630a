package cpu

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// allocWeights returns n zeroed bytes of memory outside the Go heap, and the function that releases them
// (see weights_mmap.go for why).
func allocWeights(n int) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	addr, err := windows.VirtualAlloc(0, uintptr(n), windows.MEM_COMMIT|windows.MEM_RESERVE, windows.PAGE_READWRITE)
	if err != nil {
		return nil, nil, fmt.Errorf("allocating %d bytes for weights: %w", n, err)
	}
	// The address comes from the OS, not the Go heap: reinterpret it without a uintptr conversion.
	p := *(*unsafe.Pointer)(unsafe.Pointer(&addr))
	return unsafe.Slice((*byte)(p), n), func() { _ = windows.VirtualFree(addr, 0, windows.MEM_RELEASE) }, nil
}
