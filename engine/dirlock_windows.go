//go:build windows

package engine

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// dirLocks reports that lockDir's locks hold on this system.
const dirLocks = true

// tryLock takes an exclusive lock on f's first byte without waiting (LockFileEx: held by the handle,
// released when it is closed or the process ends); errLockHeld when another handle holds it.
func tryLock(f *os.File) error {
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &windows.Overlapped{})
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLockHeld
	}
	return err
}
