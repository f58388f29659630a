//go:build windows

package gguf

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// mapFile maps path read-only through a file mapping object.
func mapFile(path string) ([]byte, func() error, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, nil, fmt.Errorf("file is empty")
	}
	h, err := windows.CreateFileMapping(windows.Handle(fd.Fd()), nil, windows.PAGE_READONLY,
		uint32(uint64(size)>>32), uint32(size), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("CreateFileMapping: %w", err)
	}
	addr, err := windows.MapViewOfFile(h, windows.FILE_MAP_READ, 0, 0, uintptr(size))
	windows.CloseHandle(h)
	if err != nil {
		return nil, nil, fmt.Errorf("MapViewOfFile: %w", err)
	}
	// The view is outside the Go heap, so the garbage collector never moves or frees it; reading the
	// address's bits as a pointer (rather than converting the uintptr) keeps go vet's unsafeptr check,
	// which cannot know that, quiet.
	data := unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), int(size))
	return data, func() error { return windows.UnmapViewOfFile(addr) }, nil
}
