//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package engine

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// dirLocks reports that lockDir's locks hold on this system.
const dirLocks = true

// tryLock takes an exclusive lock on f without waiting (flock: held by the open file, released when it
// is closed or the process ends); errLockHeld when another open file holds it.
func tryLock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errLockHeld
	}
	return err
}
