// Package quant holds ggml's tensor element types: their block layouts, dequantization to f32 and
// reference quantizers. It says what the formats are; the CPU backend's kernels that compute with them
// live in cpu/kernels, the GPU's in shaders/.
//
// Every layout here follows ggml-common.h byte for byte (see the SmolLM3 spec, §6). Blocks run along
// ne0, so a row of n elements is n/BlockSize(t) consecutive blocks of TypeSize(t) bytes.
//
// The dequantizers and the reference quantizers reproduce llama.cpp's output bit for bit (checked on
// amd64, see the tests). Everything here is safe for concurrent use.
package quant

import (
	"fmt"
	"strings"
)

// Type is a ggml_type id as stored in GGUF tensor infos.
type Type uint32

// The ggml type ids this project knows. Only some are supported for dequantization; see Supported.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q4_1 Type = 3
	Q5_0 Type = 6
	Q5_1 Type = 7
	Q8_0 Type = 8
	Q8_1 Type = 9
	Q2_K Type = 10
	Q3_K Type = 11
	Q4_K Type = 12
	Q5_K Type = 13
	Q6_K Type = 14
	Q8_K Type = 15
	BF16 Type = 30
)

// QK_K is the super-block size of the K-quants.
const QK_K = 256

// typeInfo is everything this package knows about one element type: its block layout and, where this
// project reads or writes the type, the functions that do. A nil function is an operation the type does
// not have. The backends keep their own columns of this table, keyed by Type: cpu/kernels' dot products
// and gpu's dequantizer shaders.
type typeInfo struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block

	dequantize func(src []byte, dst []float32) // a whole row (DequantizeRow)
	quantize   func(src []float32, dst []byte) // a whole row, finite inputs (QuantizeRow)
	// activation marks a format that only encodes activations for the dot products (Q8_K), never a
	// weight in a file, so Supported leaves it out although it has a dequantizer.
	activation bool
}

// infos lists every type whose layout is known, so a GGUF file using any of them can be inspected even
// when this project cannot compute with it.
var infos = map[Type]typeInfo{
	F32:  {name: "F32", blockSize: 1, typeSize: 4, dequantize: dequantF32, quantize: quantizeF32},
	F16:  {name: "F16", blockSize: 1, typeSize: 2, dequantize: dequantF16, quantize: quantizeF16},
	BF16: {name: "BF16", blockSize: 1, typeSize: 2, dequantize: dequantBF16, quantize: quantizeBF16},
	Q4_0: {name: "Q4_0", blockSize: 32, typeSize: Q4_0Bytes, dequantize: blockwise(Q4_0Bytes, 32, dequantQ4_0),
		quantize: blockwise(32, Q4_0Bytes, quantizeQ4_0)},
	Q4_1: {name: "Q4_1", blockSize: 32, typeSize: 20},
	Q5_0: {name: "Q5_0", blockSize: 32, typeSize: 22},
	Q5_1: {name: "Q5_1", blockSize: 32, typeSize: 24},
	Q8_0: {name: "Q8_0", blockSize: 32, typeSize: Q8_0Bytes, dequantize: blockwise(Q8_0Bytes, 32, dequantQ8_0),
		quantize: QuantizeRowQ8_0},
	Q8_1: {name: "Q8_1", blockSize: 32, typeSize: 36},
	Q2_K: {name: "Q2_K", blockSize: QK_K, typeSize: 84},
	Q3_K: {name: "Q3_K", blockSize: QK_K, typeSize: 110},
	Q4_K: {name: "Q4_K", blockSize: QK_K, typeSize: Q4KBytes, dequantize: blockwise(Q4KBytes, QK_K, dequantQ4K),
		quantize: blockwise(QK_K, Q4KBytes, quantizeQ4K)},
	Q5_K: {name: "Q5_K", blockSize: QK_K, typeSize: Q5KBytes, dequantize: blockwise(Q5KBytes, QK_K, dequantQ5K),
		quantize: blockwise(QK_K, Q5KBytes, quantizeQ5K)},
	Q6_K: {name: "Q6_K", blockSize: QK_K, typeSize: Q6KBytes, dequantize: blockwise(Q6KBytes, QK_K, dequantQ6K),
		quantize: blockwise(QK_K, Q6KBytes, quantizeQ6K)},
	// Q8_K is the activation format of the K-quant dot products, not a weight type.
	Q8_K: {name: "Q8_K", blockSize: QK_K, typeSize: Q8KBytes, dequantize: blockwise(Q8KBytes, QK_K, dequantQ8K),
		quantize: QuantizeRowQ8K, activation: true},
}

// blockwise makes a row function of a block function: a row is whole blocks, of xn elements of x and
// yn of y each.
func blockwise[X, Y any](xn, yn int, block func(x []X, y []Y)) func(x []X, y []Y) {
	return func(x []X, y []Y) {
		for b := range len(x) / xn {
			block(x[b*xn:][:xn], y[b*yn:][:yn])
		}
	}
}

// Known reports whether t's block layout is known.
func (t Type) Known() bool { _, ok := infos[t]; return ok }

// String is ggml's name for the type ("Q4_K"), or "type(N)" for an unknown id.
func (t Type) String() string {
	if i, ok := infos[t]; ok {
		return i.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements per block (1 for F32/F16/BF16). It is 0 for an unknown type.
func (t Type) BlockSize() int { return infos[t].blockSize }

// TypeSize is the number of bytes per block. It is 0 for an unknown type.
func (t Type) TypeSize() int { return infos[t].typeSize }

// RowBytes is the byte size of a row of n elements, or an error when n is not a whole number of blocks.
func (t Type) RowBytes(n int) (int, error) {
	i, ok := infos[t]
	if !ok {
		return 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	if n%i.blockSize != 0 {
		return 0, fmt.Errorf("%s row of %d elements is not a multiple of the block size %d", i.name, n, i.blockSize)
	}
	return n / i.blockSize * i.typeSize, nil
}

// SupportedNames lists the types Supported accepts, for error messages.
func SupportedNames() string { return Names(Supported) }

// Names lists, in ggml's id order, the names of the known types for which ok holds ("F32, Q4_K").
func Names(ok func(Type) bool) string {
	var names []string
	for t := range Type(BF16 + 1) {
		if t.Known() && ok(t) {
			names = append(names, t.String())
		}
	}
	return strings.Join(names, ", ")
}
