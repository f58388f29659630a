// Package quant holds ggml's tensor element types: their block layouts, dequantization to f32,
// reference quantizers, and the quantized dot products the CPU backend is built on.
//
// Every layout here follows ggml-common.h byte for byte (see the SmolLM3 spec, §6). Blocks run along
// ne0, so a row of n elements is n/BlockSize(t) consecutive blocks of TypeSize(t) bytes.
//
// The dequantizers and the reference quantizers reproduce llama.cpp's output bit for bit (checked on
// amd64, see the tests). The dot products run in AVX2 assembly on amd64 CPUs with AVX2, FMA and F16C,
// and in portable Go elsewhere, in builds with the purego tag, or after ForceGeneric(true). Both compute
// the same exact integer sums per block; they differ only in the order of the float additions.
// Everything here is safe for concurrent use.
package quant

import "fmt"

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

type typeInfo struct {
	name      string
	blockSize int // elements per block
	typeSize  int // bytes per block
}

// infos lists every type whose layout is known, so a GGUF file using any of them can be inspected even
// when this project cannot compute with it.
var infos = map[Type]typeInfo{
	F32:  {"F32", 1, 4},
	F16:  {"F16", 1, 2},
	Q4_0: {"Q4_0", 32, 18},
	Q4_1: {"Q4_1", 32, 20},
	Q5_0: {"Q5_0", 32, 22},
	Q5_1: {"Q5_1", 32, 24},
	Q8_0: {"Q8_0", 32, 34},
	Q8_1: {"Q8_1", 32, 36},
	Q2_K: {"Q2_K", 256, 84},
	Q3_K: {"Q3_K", 256, 110},
	Q4_K: {"Q4_K", 256, 144},
	Q5_K: {"Q5_K", 256, 176},
	Q6_K: {"Q6_K", 256, 210},
	Q8_K: {"Q8_K", 256, 292},
	BF16: {"BF16", 1, 2},
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

// ParseType maps ggml's name ("Q4_K", case-sensitive) to a Type.
func ParseType(name string) (Type, bool) {
	for t, i := range infos {
		if i.name == name {
			return t, true
		}
	}
	return 0, false
}

// SupportedNames lists the types Supported accepts, for error messages.
func SupportedNames() string {
	s := ""
	for _, t := range []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K} {
		if !Supported(t) {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += t.String()
	}
	return s
}
