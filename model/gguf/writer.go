package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"smolchat/model/quant"
)

// Writer streams a GGUF v3 file: declare metadata and tensors, write the header, then each tensor's data
// in declaration order. Tensor data never has to be held in memory all at once.
type Writer struct {
	w         *bufio.Writer
	alignment uint64
	kvs       []KV
	tensors   []*TensorInfo
	next      int    // index of the next tensor to write
	written   uint64 // bytes written so far
	dataStart uint64
	header    bool
	err       error // the first write error; every later call returns it
}

// NewWriter writes to w with the default alignment (32).
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 1<<20), alignment: 32}
}

// AddKV declares a metadata pair. value must be one of the Go types of KV.Value, an Array, or a slice
// of a supported element type ([]string, []float32, []int32, ...), which becomes an Array. Setting
// "general.alignment" (uint32) changes the alignment.
func (w *Writer) AddKV(key string, value any) {
	w.kvs = append(w.kvs, KV{Key: key, Value: value})
	if a, ok := value.(uint32); ok && key == "general.alignment" && a > 0 {
		w.alignment = uint64(a)
	}
}

// AddTensor declares a tensor of type typ with dims (ne0 first).
func (w *Writer) AddTensor(name string, typ quant.Type, dims []uint64) error {
	if w.header {
		return fmt.Errorf("gguf: AddTensor %q after WriteHeader", name)
	}
	if len(dims) == 0 || len(dims) > maxDims {
		return fmt.Errorf("gguf: tensor %q: %d dims, want 1 to %d", name, len(dims), maxDims)
	}
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	rowBytes, err := typ.RowBytes(int(dims[0]))
	if err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	size := uint64(rowBytes) * (n / dims[0])
	var off uint64
	if k := len(w.tensors); k > 0 {
		last := w.tensors[k-1]
		off = alignUp(last.Offset+last.Size, w.alignment)
	}
	w.tensors = append(w.tensors, &TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: typ,
		Offset: off, Size: size, Elements: n})
	return nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// WriteHeader writes the header, metadata and tensor infos, and pads to the data section.
func (w *Writer) WriteHeader() error {
	if w.header {
		return fmt.Errorf("gguf: header already written")
	}
	w.header = true
	w.put("GGUF")
	w.u32(3)
	w.u64(uint64(len(w.tensors)))
	w.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		w.str(kv.Key)
		if err := w.value(kv.Value, true); err != nil {
			return fmt.Errorf("gguf: metadata %q: %w", kv.Key, err)
		}
	}
	for _, t := range w.tensors {
		w.str(t.Name)
		w.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			w.u64(d)
		}
		w.u32(uint32(t.Type))
		w.u64(t.Offset)
	}
	w.pad()
	w.dataStart = w.written
	return w.err
}

// WriteTensor writes the data of the next declared tensor, which must be name, with exactly its size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if !w.header {
		return fmt.Errorf("gguf: WriteTensor %q before WriteHeader", name)
	}
	if w.next >= len(w.tensors) || w.tensors[w.next].Name != name {
		return fmt.Errorf("gguf: WriteTensor %q out of declaration order", name)
	}
	t := w.tensors[w.next]
	if uint64(len(data)) != t.Size {
		return fmt.Errorf("gguf: tensor %q: got %d bytes, want %d", name, len(data), t.Size)
	}
	for w.written-w.dataStart < t.Offset {
		w.putByte(0)
	}
	w.putBytes(data)
	w.next++
	return w.err
}

// Close checks that every tensor was written and flushes.
func (w *Writer) Close() error {
	if !w.header {
		if err := w.WriteHeader(); err != nil {
			return err
		}
	}
	if w.next != len(w.tensors) {
		return fmt.Errorf("gguf: %d of %d tensors written", w.next, len(w.tensors))
	}
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

func (w *Writer) pad() {
	for w.written%w.alignment != 0 {
		w.putByte(0)
	}
}

// The put functions record the first write error; later writes are skipped.
func (w *Writer) put(s string) {
	if w.err != nil {
		return
	}
	n, err := w.w.WriteString(s)
	w.written += uint64(n)
	if err != nil {
		w.err = fmt.Errorf("gguf: write: %w", err)
	}
}

func (w *Writer) putBytes(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.written += uint64(n)
	if err != nil {
		w.err = fmt.Errorf("gguf: write: %w", err)
	}
}

func (w *Writer) putByte(b byte) {
	if w.err != nil {
		return
	}
	if err := w.w.WriteByte(b); err != nil {
		w.err = fmt.Errorf("gguf: write: %w", err)
		return
	}
	w.written++
}

func (w *Writer) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	w.put(string(b[:]))
}

func (w *Writer) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	w.put(string(b[:]))
}

func (w *Writer) str(s string) {
	w.u64(uint64(len(s)))
	w.put(s)
}

// value writes v, preceded by its type tag when tagged.
func (w *Writer) value(v any, tagged bool) error {
	tag := func(t ValueType) {
		if tagged {
			w.u32(uint32(t))
		}
	}
	switch x := v.(type) {
	case uint8:
		tag(TypeUint8)
		w.putByte(x)
	case int8:
		tag(TypeInt8)
		w.putByte(byte(x))
	case uint16:
		tag(TypeUint16)
		w.put(string([]byte{byte(x), byte(x >> 8)}))
	case int16:
		tag(TypeInt16)
		w.put(string([]byte{byte(x), byte(x >> 8)}))
	case uint32:
		tag(TypeUint32)
		w.u32(x)
	case int32:
		tag(TypeInt32)
		w.u32(uint32(x))
	case float32:
		tag(TypeFloat32)
		w.u32(math.Float32bits(x))
	case bool:
		tag(TypeBool)
		if x {
			w.put("\x01")
		} else {
			w.put("\x00")
		}
	case string:
		tag(TypeString)
		w.str(x)
	case uint64:
		tag(TypeUint64)
		w.u64(x)
	case int64:
		tag(TypeInt64)
		w.u64(uint64(x))
	case float64:
		tag(TypeFloat64)
		w.u64(math.Float64bits(x))
	case Array:
		tag(TypeArray)
		return w.array(x)
	case []uint8:
		return w.value(Array{TypeUint8, x}, tagged)
	case []int8:
		return w.value(Array{TypeInt8, x}, tagged)
	case []uint16:
		return w.value(Array{TypeUint16, x}, tagged)
	case []int16:
		return w.value(Array{TypeInt16, x}, tagged)
	case []uint32:
		return w.value(Array{TypeUint32, x}, tagged)
	case []int32:
		return w.value(Array{TypeInt32, x}, tagged)
	case []float32:
		return w.value(Array{TypeFloat32, x}, tagged)
	case []bool:
		return w.value(Array{TypeBool, x}, tagged)
	case []string:
		return w.value(Array{TypeString, x}, tagged)
	case []uint64:
		return w.value(Array{TypeUint64, x}, tagged)
	case []int64:
		return w.value(Array{TypeInt64, x}, tagged)
	case []float64:
		return w.value(Array{TypeFloat64, x}, tagged)
	case []Array:
		return w.value(Array{TypeArray, x}, tagged)
	default:
		return fmt.Errorf("unsupported value type %T", v)
	}
	return nil
}

func (w *Writer) array(a Array) error {
	w.u32(uint32(a.Type))
	w.u64(uint64(a.Len()))
	switch x := a.Values.(type) {
	case []uint8:
		w.putBytes(x)
		return nil
	case []Array:
		for _, e := range x {
			if err := w.array(e); err != nil {
				return err
			}
		}
		return nil
	}
	for i, n := 0, a.Len(); i < n; i++ {
		v := a.Index(i)
		if v == nil {
			return fmt.Errorf("unsupported array of %T", a.Values)
		}
		if err := w.value(v, false); err != nil {
			return err
		}
	}
	return nil
}
