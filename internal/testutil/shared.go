// Package testutil finds the fixtures in ../shared/testdata (beside the repository) for tests, and skips a
// test with a clear message when they are absent, so the suite passes on a clone without them.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// RepoRoot is the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedDir is ../shared/testdata beside the repository, or $SMOLCHAT_SHARED_TESTDATA when set.
func SharedDir() string {
	if d := os.Getenv("SMOLCHAT_SHARED_TESTDATA"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared", "testdata")
}

// SharedFile returns the path of a fixture in the shared test data, skipping t when it is missing.
func SharedFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(SharedDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: shared fixture %s not found (%v); it lives in ../shared/testdata beside the repository", name, err)
	}
	return p
}

// ReferenceScript installs (once) and locates llama.cpp's reference runner, ../shared/reference's
// ref.mjs, failing the test when its setup fails.
func ReferenceScript(t testing.TB) string {
	t.Helper()
	setup := filepath.Join(SharedDir(), "..", "reference", "setup.sh")
	out, err := exec.Command(setup).Output()
	if err != nil {
		t.Fatalf("reference setup (%s): %v", setup, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "ref.mjs")
}

// LiveReference is ReferenceScript for the tests that compare with llama.cpp run now: they need node and
// the reference install, so they run only with SMOLCHAT_LIVE_REFERENCE=1 (`task conformance`) and skip t
// otherwise.
func LiveReference(t testing.TB) string {
	t.Helper()
	if os.Getenv("SMOLCHAT_LIVE_REFERENCE") == "" {
		t.Skip("live llama.cpp comparison: set SMOLCHAT_LIVE_REFERENCE=1 (task conformance)")
	}
	return ReferenceScript(t)
}
