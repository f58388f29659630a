package gpu

import (
	"fmt"
	"strings"
)

// What each op moves and computes, so that the profiler can turn times into rates. The byte counts are
// the least an op must read and write (each weight once, activations in and out); a kernel that reads
// a tile twice moves more, so a rate near the memory bandwidth means the op is bandwidth-bound, and one
// far below it means there is work to find.

// opInfo describes one op recorded for T tokens after pos cached positions.
type opInfo struct {
	Kernel string // shader file and the variant's non-empty defines
	Shape  string
	Bytes  float64
	Flops  float64
}

// opCost is how a simple op describes itself.
type opCost struct {
	shape string
	cost  func(T, pos int) (bytes, flops float64)
}

func (o *op) describe(T, pos int) opInfo {
	bytes, flops := o.cost.cost(T, pos)
	return opInfo{Kernel: variant(o.k), Shape: o.cost.shape, Bytes: bytes, Flops: flops}
}

func (o *matMulOp) describe(T, _ int) opInfo {
	k := o.mv
	switch {
	case T > matvecMaxT && o.mm != nil:
		k = o.mm
	case T > 1:
		f, _ := o.few(T)
		k = f.k
	}
	w := o.W
	return opInfo{Kernel: variant(k), Shape: fmt.Sprintf("%dx%d %s", w.M, w.K, w.Type),
		Bytes: float64(w.Bytes()) + 4*float64(T)*float64(w.K+w.M), Flops: 2 * float64(T) * float64(w.M) * float64(w.K)}
}

func (o *embedOp) describe(T, _ int) opInfo {
	return opInfo{Kernel: variant(o.k), Shape: fmt.Sprintf("%d rows of %d %s", o.w.M, o.w.K, o.w.Type),
		Bytes: float64(T) * float64(o.w.RowBytes+4*o.dim), Flops: float64(T * o.dim)}
}

// variant shortens a kernel's cache key ("matvec.wgsl:main ACCUM=1 GLU= …") to its file, its entry
// point when not main, and the defines that are set.
func variant(k *kernel) string {
	fields := strings.Fields(k.Name)
	if len(fields) == 0 {
		return ""
	}
	out := []string{strings.TrimSuffix(fields[0], ":main")}
	for _, f := range fields[1:] {
		if !strings.HasSuffix(f, "=") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}
