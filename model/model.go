package model

import (
	"fmt"
	"math"
	"path/filepath"

	"smolchat/model/gguf"
	"smolchat/model/quant"
)

// Tensor is a weight matrix (or vector) as stored in the file: Rows rows of Cols elements (Cols = ne0),
// each row a run of quantization blocks. Data is a view into the mapped file.
type Tensor struct {
	Name string
	Type quant.Type
	Rows int
	Cols int
	Data []byte
}

// RowBytes is the size of one row in bytes.
func (t Tensor) RowBytes() int { return len(t.Data) / t.Rows }

// Row is row r's bytes.
func (t Tensor) Row(r int) []byte {
	n := t.RowBytes()
	return t.Data[r*n : (r+1)*n]
}

// Layer holds one transformer block's weights.
type Layer struct {
	AttnNorm, Q, K, V, O Tensor
	FFNNorm, Gate, Up    Tensor
	Down                 Tensor
	QNorm, KNorm         Tensor // QK-norm gains, one head wide (Family.QKNorm; empty otherwise)
}

// Weights are all of a model's tensors by role. Output is Embed when the embeddings are tied. RopeFreqs
// is Llama 3's rope_freqs.weight when the file has it (also decoded into Config.RopeFreqs).
type Weights struct {
	Embed, OutputNorm, Output Tensor
	RopeFreqs                 Tensor
	Layers                    []Layer
}

// Model is an opened GGUF model.
type Model struct {
	Path    string
	File    *gguf.File
	Config  Config
	Weights Weights
}

// Open maps the GGUF file at path and checks that it holds a model this project can run: a supported
// architecture, hyperparameters it can use, every tensor it needs present with the expected shape and an
// element type it can compute with, and no tensor it would ignore.
func Open(path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := FromFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// FromFile builds a Model over an opened file.
func FromFile(f *gguf.File) (*Model, error) {
	c, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	m := &Model{Path: f.Path, File: f, Config: c}
	get := func(name string, rows, cols int) (Tensor, error) {
		t := f.Tensor(name)
		if t == nil {
			return Tensor{}, fmt.Errorf("model %s: tensor %s is missing", f.Path, name)
		}
		want := []uint64{uint64(cols), uint64(rows)}
		if rows == 1 {
			want = want[:1]
		}
		if len(t.Dims) != len(want) || t.Dims[0] != want[0] || (len(want) == 2 && t.Dims[1] != want[1]) {
			return Tensor{}, fmt.Errorf("model %s: tensor %s has shape %v, want %v", f.Path, name, t.Dims, want)
		}
		if !quant.Supported(t.Type) {
			return Tensor{}, fmt.Errorf("model %s: tensor %s has type %s, which this project cannot compute with (supported: %s)",
				f.Path, name, t.Type, quant.SupportedNames())
		}
		return Tensor{Name: name, Type: t.Type, Rows: rows, Cols: cols, Data: f.Data(t)}, nil
	}
	w := &m.Weights
	plan := tensorPlan(c, w, f.Tensor("rope_freqs.weight") != nil)
	known := make(map[string]bool, len(plan))
	for _, p := range plan {
		known[p.name] = true
	}
	for _, t := range f.Tensors {
		if !known[t.Name] {
			return nil, unknownTensor(f.Path, c.Arch, t.Name, plan)
		}
	}
	for _, p := range plan {
		if *p.dst, err = get(p.name, p.rows, p.cols); err != nil {
			return nil, err
		}
	}
	if c.TiedOutput {
		w.Output = w.Embed
	}
	if w.RopeFreqs.Data != nil {
		if m.Config.RopeFreqs, err = ropeFreqs(f.Path, w.RopeFreqs); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ropeFreqs decodes rope_freqs.weight: F32 (as ggml's rope requires), finite and positive divisors.
func ropeFreqs(path string, t Tensor) ([]float32, error) {
	if t.Type != quant.F32 {
		return nil, fmt.Errorf("model %s: tensor %s has type %s, want F32 (llama.cpp's RoPE reads only F32 frequency factors) %s", path, t.Name, t.Type, badFile)
	}
	v := make([]float32, t.Cols)
	if err := quant.DequantizeRow(t.Type, t.Data, v); err != nil {
		return nil, fmt.Errorf("model %s: tensor %s: %w", path, t.Name, err)
	}
	for i, x := range v {
		if !(x > 0) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("model %s: tensor %s holds %g at %d, want finite divisors above 0 %s", path, t.Name, x, i, badFile)
		}
	}
	return v, nil
}

// Name is the file's base name.
func (m *Model) Name() string { return filepath.Base(m.Path) }

// ParamCount is the number of weights in the file.
func (m *Model) ParamCount() int64 {
	var n int64
	for _, t := range m.File.Tensors {
		n += int64(t.Elements)
	}
	return n
}

// Close unmaps the file.
func (m *Model) Close() error { return m.File.Close() }
