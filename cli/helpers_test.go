package cli

import (
	"os"
	"testing"
)

// Fixtures shared by several tests (a synthesized model) live in directories removed after all tests.
var tempDirs []string

func osMkdirTemp() (string, error) {
	d, err := os.MkdirTemp("", "smolchat-cli-test-")
	if err == nil {
		tempDirs = append(tempDirs, d)
	}
	return d, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}
