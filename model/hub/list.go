package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// LocalModel is a file in the models directory.
type LocalModel struct {
	Name         string
	Path         string
	Size         int64
	Quantization string // "Q4_K_M", or the dominant tensor type when the file does not say
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
	return arch, Quantization(f), nil
}

// Quantization names a model's quantization: general.file_type mapped to llama.cpp's name (Q4_K_M),
// else the tensor type holding the most bytes (Q4_K), else "".
func Quantization(f *gguf.File) string {
	if ft, ok := f.Uint("general.file_type"); ok {
		if name, ok := fileTypeNames[ft]; ok {
			return name
		}
	}
	bytes := map[quant.Type]uint64{}
	for _, t := range f.Tensors {
		bytes[t.Type] += t.Size
	}
	var best quant.Type
	found := false
	for t, n := range bytes {
		if !found || n > bytes[best] || n == bytes[best] && t < best {
			best, found = t, true
		}
	}
	if !found {
		return ""
	}
	return best.String()
}

// fileTypeNames maps llama.cpp's llama_ftype (general.file_type) to the names llama-quantize uses.
// Ids 4 to 6 and 33 to 35 were retired and are absent.
var fileTypeNames = map[uint64]string{
	0:  "F32",
	1:  "F16",
	2:  "Q4_0",
	3:  "Q4_1",
	7:  "Q8_0",
	8:  "Q5_0",
	9:  "Q5_1",
	10: "Q2_K",
	11: "Q3_K_S",
	12: "Q3_K_M",
	13: "Q3_K_L",
	14: "Q4_K_S",
	15: "Q4_K_M",
	16: "Q5_K_S",
	17: "Q5_K_M",
	18: "Q6_K",
	19: "IQ2_XXS",
	20: "IQ2_XS",
	21: "Q2_K_S",
	22: "IQ3_XS",
	23: "IQ3_XXS",
	24: "IQ1_S",
	25: "IQ4_NL",
	26: "IQ3_S",
	27: "IQ3_M",
	28: "IQ2_S",
	29: "IQ2_M",
	30: "IQ4_XS",
	31: "IQ1_M",
	32: "BF16",
	36: "TQ1_0",
	37: "TQ2_0",
	38: "MXFP4_MOE",
}
