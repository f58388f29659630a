package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// errDiskInUse is openKVDisk's error when another process holds the directory of the model's KV files.
var errDiskInUse = errors.New("another smolchat server of this model and backend is using the KV disk cache")

// lockDir takes the lock file of dir, held until the returned file is closed or the process ends (the
// operating system releases it then, even after a crash or a kill, so a lock never outlives its
// server). One server a directory: two servers of one model sharing a data directory would each
// remove the other's files to keep under its own --kv-disk-max, counting only its own.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the KV disk cache's lock file: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s: %v); give each server its own --data-dir, or turn the disk cache off with --kv-disk-max 0", errDiskInUse, dir, err)
	}
	return f, nil
}
