package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"os"

	"smolchat/model/quant"
)

// Limits that keep a hostile file from exhausting memory or the stack. Real models are far inside them.
const (
	maxDims       = 4   // GGML_MAX_DIMS
	maxNameLen    = 256 // tensor names are ≤ 63 bytes in ggml; leave room for other writers
	maxArrayDepth = 8   // nested arrays
)

// Open memory-maps and parses the GGUF file at path.
func Open(path string) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("gguf: %s is a directory, not a GGUF file", path)
	}
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: map %s: %w", path, err)
	}
	f, err := Parse(data, path)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// FormatError is a malformed file: it names the file, the field and the byte offset.
type FormatError struct {
	File   string
	Field  string
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("gguf: %s: %s at offset %d: %s", e.File, e.Field, e.Offset, e.Msg)
}

// decoder reads little-endian values from data, checking bounds on every read.
type decoder struct {
	data  []byte
	off   int64
	name  string
	field string
}

func (d *decoder) fail(format string, args ...any) error {
	return &FormatError{File: d.name, Field: d.field, Offset: d.off, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) remaining() int64 { return int64(len(d.data)) - d.off }

func (d *decoder) take(n int64) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, d.fail("need %d bytes, only %d left in the file", n, d.remaining())
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b, nil
}

func (d *decoder) u8() (uint8, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) u16() (uint16, error) {
	b, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 count of items that each take at least minSize bytes, rejecting counts that cannot
// fit in the rest of the file before anything is allocated.
func (d *decoder) count(minSize int64) (int, error) {
	at := d.off
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > uint64(d.remaining()/minSize) {
		d.off = at
		return 0, d.fail("count %d cannot fit in the %d bytes left in the file", n, d.remaining())
	}
	return int(n), nil
}

func (d *decoder) str() (string, error) {
	at := d.off
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		d.off = at
		return "", d.fail("string length %d exceeds the %d bytes left in the file", n, d.remaining())
	}
	b, _ := d.take(int64(n))
	return string(b), nil
}

// Parse parses a GGUF image held in memory; name is used in error messages. The returned File refers to
// data, which must stay unchanged while the File is used.
func Parse(data []byte, name string) (*File, error) {
	d := &decoder{data: data, name: name}
	f := &File{Path: name, data: data, kvIndex: map[string]int{}, tensorIndex: map[string]int{}}

	d.field = "magic"
	magic, err := d.take(4)
	if err != nil {
		return nil, err
	}
	if string(magic) != "GGUF" {
		d.off = 0
		return nil, d.fail("bad magic %q, want \"GGUF\" (not a GGUF file)", magic)
	}
	d.field = "version"
	if f.Version, err = d.u32(); err != nil {
		return nil, err
	}
	switch {
	case f.Version == 1:
		d.off -= 4
		return nil, d.fail("GGUF version 1 is no longer supported (re-convert the model)")
	case f.Version&0xFFFF == 0:
		d.off -= 4
		return nil, d.fail("version %#x looks byte-swapped: big-endian GGUF files are not supported", f.Version)
	case f.Version != 2 && f.Version != 3:
		d.off -= 4
		return nil, d.fail("unsupported GGUF version %d (supported: 2, 3)", f.Version)
	}

	// A tensor info takes at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes; a KV pair at
	// least 8 (key len) + 4 (type) + 1 (value).
	d.field = "tensor count"
	nTensors, err := d.count(24)
	if err != nil {
		return nil, err
	}
	d.field = "metadata count"
	nKV, err := d.count(13)
	if err != nil {
		return nil, err
	}

	f.KVs = make([]KV, 0, nKV)
	for i := 0; i < nKV; i++ {
		d.field = fmt.Sprintf("metadata pair %d key", i)
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, d.fail("duplicate metadata key %q", key)
		}
		d.field = fmt.Sprintf("metadata %q", key)
		t, err := d.u32()
		if err != nil {
			return nil, err
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return nil, err
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Type: ValueType(t), Value: v})
	}

	f.Alignment = 32
	if kv, ok := f.Get("general.alignment"); ok {
		a, isU32 := kv.Value.(uint32)
		if !isU32 || a == 0 || a&(a-1) != 0 {
			return nil, &FormatError{File: name, Field: "metadata \"general.alignment\"", Offset: d.off,
				Msg: fmt.Sprintf("must be a power-of-two uint32, got %v (%s)", kv.Value, kv.Type)}
		}
		f.Alignment = int(a)
	}

	f.Tensors = make([]*TensorInfo, 0, nTensors)
	for i := 0; i < nTensors; i++ {
		t, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.tensorIndex[t.Name]; dup {
			return nil, d.fail("duplicate tensor name %q", t.Name)
		}
		f.tensorIndex[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	// The data section starts at the next multiple of the alignment.
	align := int64(f.Alignment)
	f.DataOffset = (d.off + align - 1) / align * align
	if len(f.Tensors) > 0 && f.DataOffset > int64(len(data)) {
		d.field = "data section"
		return nil, d.fail("data section would start at %d, past the end of the %d-byte file", f.DataOffset, len(data))
	}
	dataLen := uint64(int64(len(data)) - min(f.DataOffset, int64(len(data))))
	for _, t := range f.Tensors {
		if t.Offset%uint64(f.Alignment) != 0 {
			return nil, &FormatError{File: name, Field: fmt.Sprintf("tensor %q offset", t.Name), Offset: f.DataOffset,
				Msg: fmt.Sprintf("offset %d is not a multiple of the alignment %d", t.Offset, f.Alignment)}
		}
		if t.Offset > dataLen || t.Size > dataLen-t.Offset {
			return nil, &FormatError{File: name, Field: fmt.Sprintf("tensor %q data", t.Name), Offset: f.DataOffset + int64(min(t.Offset, dataLen)),
				Msg: fmt.Sprintf("bytes [%d, %d) of the data section lie outside the file's %d data bytes (truncated file?)",
					t.Offset, t.Offset+t.Size, dataLen)}
		}
	}
	return f, nil
}

func (d *decoder) tensorInfo(i int) (*TensorInfo, error) {
	d.field = fmt.Sprintf("tensor %d name", i)
	name, err := d.str()
	if err != nil {
		return nil, err
	}
	if len(name) > maxNameLen {
		return nil, d.fail("tensor name of %d bytes is longer than %d", len(name), maxNameLen)
	}
	d.field = fmt.Sprintf("tensor %q dims", name)
	nd, err := d.u32()
	if err != nil {
		return nil, err
	}
	if nd == 0 || nd > maxDims {
		return nil, d.fail("%d dimensions, want 1 to %d", nd, maxDims)
	}
	t := &TensorInfo{Name: name, Dims: make([]uint64, nd), Elements: 1}
	for j := range t.Dims {
		if t.Dims[j], err = d.u64(); err != nil {
			return nil, err
		}
		if t.Dims[j] > math.MaxInt64 {
			return nil, d.fail("dimension %d is %d, too large", j, t.Dims[j])
		}
		hi, lo := bits.Mul64(t.Elements, t.Dims[j])
		if hi != 0 || lo > math.MaxInt64 {
			return nil, d.fail("the product of dims %v overflows", t.Dims)
		}
		t.Elements = lo
	}
	d.field = fmt.Sprintf("tensor %q type", name)
	typ, err := d.u32()
	if err != nil {
		return nil, err
	}
	t.Type = quant.Type(typ)
	if !t.Type.Known() {
		return nil, d.fail("unknown tensor type %d", typ)
	}
	bs := uint64(t.Type.BlockSize())
	if t.Dims[0]%bs != 0 {
		return nil, d.fail("%s row length ne0=%d is not a multiple of the block size %d", t.Type, t.Dims[0], bs)
	}
	hi, size := bits.Mul64(t.Elements/bs, uint64(t.Type.TypeSize()))
	if hi != 0 || size > math.MaxInt64 {
		return nil, d.fail("data size of %v %s overflows", t.Dims, t.Type)
	}
	t.Size = size
	d.field = fmt.Sprintf("tensor %q offset", name)
	if t.Offset, err = d.u64(); err != nil {
		return nil, err
	}
	return t, nil
}

func (d *decoder) value(t ValueType, depth int) (any, error) {
	switch t {
	case TypeUint8:
		return d.u8()
	case TypeInt8:
		v, err := d.u8()
		return int8(v), err
	case TypeUint16:
		return d.u16()
	case TypeInt16:
		v, err := d.u16()
		return int16(v), err
	case TypeUint32:
		return d.u32()
	case TypeInt32:
		v, err := d.u32()
		return int32(v), err
	case TypeFloat32:
		v, err := d.u32()
		return math.Float32frombits(v), err
	case TypeBool:
		v, err := d.u8()
		if err == nil && v > 1 {
			d.off--
			return nil, d.fail("bool byte is %d, want 0 or 1", v)
		}
		return v == 1, err
	case TypeString:
		return d.str()
	case TypeUint64:
		return d.u64()
	case TypeInt64:
		v, err := d.u64()
		return int64(v), err
	case TypeFloat64:
		v, err := d.u64()
		return math.Float64frombits(v), err
	case TypeArray:
		return d.array(depth)
	}
	d.off -= 4
	return nil, d.fail("unknown value type %d", uint32(t))
}

func (d *decoder) array(depth int) (Array, error) {
	if depth >= maxArrayDepth {
		return Array{}, d.fail("arrays nested deeper than %d", maxArrayDepth)
	}
	et, err := d.u32()
	if err != nil {
		return Array{}, err
	}
	t := ValueType(et)
	minSize := int64(t.size())
	switch t {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if minSize == 0 {
		d.off -= 4
		return Array{}, d.fail("unknown array element type %d", et)
	}
	n, err := d.count(minSize)
	if err != nil {
		return Array{}, err
	}
	a := Array{Type: t}
	switch t {
	case TypeUint8:
		a.Values = fixed(d, n, func(b []byte) uint8 { return b[0] })
	case TypeInt8:
		a.Values = fixed(d, n, func(b []byte) int8 { return int8(b[0]) })
	case TypeUint16:
		a.Values = fixed(d, n, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
	case TypeInt16:
		a.Values = fixed(d, n, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case TypeUint32:
		a.Values = fixed(d, n, func(b []byte) uint32 { return binary.LittleEndian.Uint32(b) })
	case TypeInt32:
		a.Values = fixed(d, n, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case TypeFloat32:
		a.Values = fixed(d, n, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case TypeUint64:
		a.Values = fixed(d, n, func(b []byte) uint64 { return binary.LittleEndian.Uint64(b) })
	case TypeInt64:
		a.Values = fixed(d, n, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case TypeFloat64:
		a.Values = fixed(d, n, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case TypeBool:
		vs := make([]bool, n)
		for i := range vs {
			v, _ := d.u8() // bounds were checked by count
			if v > 1 {
				d.off--
				return Array{}, d.fail("bool byte is %d, want 0 or 1", v)
			}
			vs[i] = v == 1
		}
		a.Values = vs
	case TypeString:
		vs := make([]string, n)
		for i := range vs {
			if vs[i], err = d.str(); err != nil {
				return Array{}, err
			}
		}
		a.Values = vs
	case TypeArray:
		vs := make([]Array, n)
		for i := range vs {
			if vs[i], err = d.array(depth + 1); err != nil {
				return Array{}, err
			}
		}
		a.Values = vs
	}
	return a, nil
}

// fixed decodes n fixed-size elements; the caller has checked that they fit.
func fixed[T any](d *decoder, n int, conv func([]byte) T) []T {
	var zero T
	size := int64(binary.Size(zero))
	out := make([]T, n)
	b, _ := d.take(int64(n) * size)
	for i := range out {
		out[i] = conv(b[int64(i)*size:])
	}
	return out
}
