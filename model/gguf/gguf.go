// Package gguf reads and writes GGUF files, the container llama.cpp uses for models: a header, typed
// metadata key/value pairs, tensor descriptions, and aligned tensor data.
//
// Reading is strict: every count, length and offset is checked against the file's size before anything is
// allocated or sliced, so a corrupt or hostile file yields an error naming the file, the field and the byte
// offset, never a panic or a huge allocation. Tensor data is a zero-copy view of the memory-mapped file.
package gguf

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"

	"smolchat/model/quant"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The 13 metadata value types of GGUF.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
	"string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// size is the encoded size of a fixed-size value type, 0 for string and array.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// KV is one metadata pair. Value holds uint8, int8, uint16, int16, uint32, int32, float32, bool, string,
// uint64, int64, float64 or Array, according to Type.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// Array is an array value. Values is a slice of the element type: []uint8, []int8, []uint16, []int16,
// []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64 or []Array.
type Array struct {
	Type   ValueType
	Values any
}

// Len is the number of elements.
func (a Array) Len() int {
	switch v := a.Values.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return 0
}

// Index is element i (0 ≤ i < Len()), as the element type's Go value.
func (a Array) Index(i int) any {
	switch x := a.Values.(type) {
	case []uint8:
		return x[i]
	case []int8:
		return x[i]
	case []uint16:
		return x[i]
	case []int16:
		return x[i]
	case []uint32:
		return x[i]
	case []int32:
		return x[i]
	case []float32:
		return x[i]
	case []bool:
		return x[i]
	case []string:
		return x[i]
	case []uint64:
		return x[i]
	case []int64:
		return x[i]
	case []float64:
		return x[i]
	case []Array:
		return x[i]
	}
	return nil
}

// TensorInfo describes one tensor. Dims are in ggml order: Dims[0] (ne0) varies fastest and is the row
// length; quantization blocks run along it.
type TensorInfo struct {
	Name     string
	Dims     []uint64
	Type     quant.Type
	Offset   uint64 // relative to the data section
	Size     uint64 // bytes
	Elements uint64
}

// Rows is the number of rows: the product of every dim after ne0.
func (t *TensorInfo) Rows() uint64 {
	if t.Dims[0] == 0 {
		return 0
	}
	return t.Elements / t.Dims[0]
}

// File is a parsed GGUF file.
type File struct {
	Path       string
	Version    uint32
	Alignment  int
	DataOffset int64 // absolute offset of the data section
	KVs        []KV
	Tensors    []*TensorInfo

	kvIndex     map[string]int
	tensorIndex map[string]int
	data        []byte // the whole file
	unmap       func() error
}

// Get returns the metadata pair named key.
func (f *File) Get(key string) (KV, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return KV{}, false
	}
	return f.KVs[i], true
}

// String returns a string value.
func (f *File) String(key string) (string, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return "", false
	}
	s, ok := kv.Value.(string)
	return s, ok
}

// Uint returns a non-negative integer value of any integer type.
func (f *File) Uint(key string) (uint64, bool) {
	i, ok := f.Int(key)
	if ok && i >= 0 {
		return uint64(i), true
	}
	kv, _ := f.Get(key)
	if v, isU := kv.Value.(uint64); isU {
		return v, true
	}
	return 0, false
}

// Int returns an integer value of any integer type (a uint64 above MaxInt64 is not representable).
func (f *File) Int(key string) (int64, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch v := kv.Value.(type) {
	case uint8:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case int16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint64:
		if v <= 1<<63-1 {
			return int64(v), true
		}
	}
	return 0, false
}

// Float returns a float value (float32 or float64), or an integer value converted.
func (f *File) Float(key string) (float64, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch v := kv.Value.(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	if i, ok := f.Int(key); ok {
		return float64(i), true
	}
	return 0, false
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return false, false
	}
	b, ok := kv.Value.(bool)
	return b, ok
}

func (f *File) array(key string) (Array, bool) {
	kv, ok := f.Get(key)
	if !ok {
		return Array{}, false
	}
	a, ok := kv.Value.(Array)
	return a, ok
}

// Strings returns a string array.
func (f *File) Strings(key string) ([]string, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	s, ok := a.Values.([]string)
	return s, ok
}

// Float32s returns a float32 array.
func (f *File) Float32s(key string) ([]float32, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	s, ok := a.Values.([]float32)
	return s, ok
}

// Int32s returns an int32 array (token types are stored this way).
func (f *File) Int32s(key string) ([]int32, bool) {
	a, ok := f.array(key)
	if !ok {
		return nil, false
	}
	s, ok := a.Values.([]int32)
	return s, ok
}

// Tensor returns the tensor named name, or nil.
func (f *File) Tensor(name string) *TensorInfo {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil
	}
	return f.Tensors[i]
}

// Data is the tensor's bytes: a view into the mapped file, valid until Close. Do not modify it.
func (f *File) Data(t *TensorInfo) []byte {
	start := uint64(f.DataOffset) + t.Offset
	return f.data[start : start+t.Size : start+t.Size]
}

// Size is the file's size in bytes.
func (f *File) Size() int64 { return int64(len(f.data)) }

// Close unmaps the file. Slices returned by Data must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data = nil, nil
	return err
}

// TypeCounts counts tensors by type, for summaries.
func (f *File) TypeCounts() []TypeCount {
	m := map[quant.Type]int{}
	for _, t := range f.Tensors {
		m[t.Type]++
	}
	out := make([]TypeCount, 0, len(m))
	for t, n := range m {
		out = append(out, TypeCount{t, n})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Type < out[j].Type
	})
	return out
}

// TypeCount is a number of tensors of one type.
type TypeCount struct {
	Type  quant.Type
	Count int
}

// fingerprintSamples is how many pieces of the tensor data Fingerprint reads besides the header.
const fingerprintSamples = 16

// Fingerprint identifies the file's contents cheaply, for caches of values computed from its weights
// (the engine's KV files on disk): a SHA-256 of the file's size, its header and tensor-info section
// (every metadata key, tensor name, shape, type and offset) and sixteen 4 KiB pieces of the tensor data
// spread evenly over it, the first and last included. Hashing the whole file would read gigabytes at
// every start; the header alone would not tell apart two files that differ only in their weights (a
// fine-tune saved with the same metadata), which the sampled pieces do unless the differences avoid
// all of them.
func (f *File) Fingerprint() [sha256.Size]byte {
	h := sha256.New()
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(len(f.data)))
	h.Write(size[:])
	head := min(f.DataOffset, int64(len(f.data)))
	h.Write(f.data[:head])
	const piece = 4096
	if span := int64(len(f.data)) - head - piece; span > 0 {
		for i := range int64(fingerprintSamples) {
			at := head + span*i/(fingerprintSamples-1)
			h.Write(f.data[at : at+piece])
		}
	} else {
		h.Write(f.data[head:])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
