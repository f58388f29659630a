package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// errDiskInUse is openKVDisk's error when another process holds the directory of the model's KV files.
var errDiskInUse = errors.New("another smolchat server of this model and backend is using the KV disk cache")

// errLockHeld is tryLock's error when another process (or another open file) holds the lock.
var errLockHeld = errors.New("the lock is held")

// lockDir takes the lock file of dir, held until the returned file is closed or the process ends (the
// operating system releases it then, even after a crash or a kill, so a lock never outlives its
// server). One server a directory: two servers of one model sharing a data directory would each
// remove the other's files to keep under its own --kv-disk-max, counting only its own. Where the file
// system cannot lock (some network and container mounts), the cache goes on without the lock, with a
// log line: one server a directory is then the user's to keep.
func lockDir(dir string, log *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the KV disk cache's lock file: %w", err)
	}
	switch err := tryLock(f); {
	case errors.Is(err, errLockHeld):
		f.Close()
		return nil, fmt.Errorf("%w (%s); give each server its own --data-dir, or turn the disk cache off with --kv-disk-max 0", errDiskInUse, dir)
	case err != nil:
		log.Warn("the KV disk cache's directory cannot be locked; two servers of this model on this --data-dir would remove each other's files",
			"dir", dir, "err", err)
	}
	return f, nil
}
