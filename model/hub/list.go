package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"smolchat/model"
	"smolchat/model/gguf"
)

// LocalModel is a file in the models directory.
type LocalModel struct {
	Name         string
	Path         string
	Size         int64
	Quantization string // "Q4_K_M", or the type holding the most bytes when the file does not say (model.FileTypeName)
	Architecture string // general.architecture, e.g. "smollm3"
	Incomplete   bool   // a NAME.partial download waiting to be resumed
	Err          error  // why the file could not be read as a GGUF model
}

// List describes the .gguf files in dir (symlinks followed), sorted by name. Files that are not readable GGUF models are
// listed with Err set rather than skipped; partial downloads (NAME.gguf.partial) are listed as Incomplete.
// A directory that does not exist holds no models.
func List(dir string) ([]LocalModel, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	var out []LocalModel
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		lower := strings.ToLower(name)
		if !strings.HasSuffix(lower, ".gguf") && !strings.HasSuffix(lower, ".gguf.partial") {
			continue
		}
		m := LocalModel{Name: name, Path: filepath.Join(dir, name)}
		info, err := os.Stat(m.Path) // follows a symlink to a model kept elsewhere
		if err != nil {
			m.Err = err
			out = append(out, m)
			continue
		}
		m.Size = info.Size()
		if strings.HasSuffix(lower, ".partial") {
			m.Incomplete = true
		} else {
			m.Architecture, m.Quantization, m.Err = describe(m.Path)
		}
		out = append(out, m)
	}
	return out, nil // sorted by name, as os.ReadDir returns them
}

func describe(path string) (arch, quantization string, err error) {
	f, err := gguf.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	arch, _ = f.String("general.architecture")
	return arch, model.FileTypeName(f), nil
}
