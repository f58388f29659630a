//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package engine

import (
	"os"

	"golang.org/x/sys/unix"
)

// tryLock takes an exclusive lock on f without waiting (flock: held by the open file, released when it
// is closed or the process ends).
func tryLock(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}
