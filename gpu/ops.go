package gpu

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/shaders"
)

// An op is a kernel bound to its buffers at load time; Record adds its dispatches for a step of T
// tokens to an encoder. Bind groups and parameter uniforms never change after construction: what varies
// per step (T, the first position) lives in the device's step uniform (SetStep).

// Workgroup shape of the decode mat-vec (matvec.wgsl, F32/F16/Q8_0): WG threads computing matvecRows
// rows at a time.
const (
	matvecWG   = 128
	matvecRows = 4
	// matvecMaxT is the largest token count recorded as mat-vecs; larger steps use the tiled mat-mat,
	// which decodes each weight once per workgroup of up to 64 tokens (matmulShape), except on
	// CPU-type adapters, where every step takes the mat-vec (device.prefillMatVec).
	matvecMaxT = 8
	// matvecFewRows is the rows per workgroup of the few-token mat-vec variants of the K-quant kernels,
	// whatever the one-token variant has: each thread loads a unit's activations for every token of the
	// workgroup, and 16 rows share them (on lavapipe 8 rows were slower per weight for 4 tokens).
	matvecFewRows = 16
	// matvecFewRowsCPU is the rows per workgroup of the four-token variant on CPU-type adapters. There a
	// thread's activation loads are a loop over the SIMD lanes, and 32 rows sharing them cut the
	// four-token Q6_K product's time by about a third on lavapipe (docs/BENCHMARKS.md); on a GPU the
	// 4 × 32 sums would crowd the registers. The price is compile time: 8-9 s more on lavapipe at the
	// first load on a machine (Mesa keeps compiled kernels in its disk cache).
	matvecFewRowsCPU = 32
)

// matvecFewNT are the token counts (the NT define) of the few-token mat-vec variants: a step of T tokens
// (2 ≤ T ≤ matvecMaxT, or any T > 1 with device.prefillMatVec) takes the smallest that holds it, else
// the largest, ceil(T/NT) workgroups along z.
// A workgroup's tokens past the step's cost as much as real ones where branches are masks (lavapipe), and
// a variant's registers grow with NT: on lavapipe an NT=8 variant took 45 s to compile and ran slower
// per token than two workgroups of 4.
var matvecFewNT = []int{2, 4}

// matvecFewMaxNT is the largest few-token variant's token count: the one tuning chooses a shape for.
var matvecFewMaxNT = matvecFewNT[len(matvecFewNT)-1]

var matBinds = []binding{bindReadOnly, bindReadOnly, bindReadWrite}

// weightBinds returns binds, whose first is the weights', with a texture there when w is held in
// textures.
func weightBinds(w *weights, binds []binding) []binding {
	out := slices.Clone(binds)
	if w.Tex {
		out[0] = bindTexture
	}
	return out
}

// weightDefs adds to defs what weights.wgsl needs to read w: WTEX when w is held in textures, WVEC4
// when the kernel reads it 16 bytes at a time (vec4: the types' own kernels do; matvec.wgsl,
// mm_tile_dq4.wgsl and embed.wgsl read words).
func weightDefs(w *weights, vec4 bool, defs shaders.Defines) shaders.Defines {
	defs["WTEX"] = boolDef(w.Tex)
	defs["WVEC4"] = boolDef(vec4)
	return defs
}

// matvecShape is a decode mat-vec kernel and its workgroup shape: wg threads computing rows rows (even,
// so that RoPE pairs stay in one workgroup), reducing through workgroup memory even on a device with
// subgroups when tree is set. Tuning (tune.go) chooses one per weight shape; matvecShapeFor is the
// choice without it.
type matvecShape struct {
	file     string
	wg, rows int
	tree     bool
	int8     bool // the integer path of the K-quant kernels (q8.wgsl): 8-bit activations, dot4I8Packed
	// few is the few-token variants' workgroup shape where tuning chose one; zero: this shape's threads
	// and reduction with the rows of fewShape's rule. (Their file and numerics are always this shape's.)
	few fewShape
}

// fewShape is the workgroup shape of the few-token mat-vec variants (matvecFewNT): wg threads, rows rows,
// the workgroup-memory tree when tree is set.
type fewShape struct {
	wg, rows int
	tree     bool
}

// matvecShapeFor returns the mat-vec kernel for rows of k elements of type wt (kernelTypes). The K-quants
// have kernels of their own whose threads take 64 elements of a row at a time (matvec_q4_k.wgsl) for 8
// rows, sharing each x load 8 ways: rows of up to 32 such units get one unit per thread, 8 to 32 threads
// (32 for SmolLM3's 2048-wide rows), longer rows 64 threads (measured on lavapipe, docs/BENCHMARKS.md).
func matvecShapeFor(wt string, k int) matvecShape {
	if ownKernels(wt) {
		wg := 64
		if units := k / 64; units <= 32 {
			// Rows of 8 or 16 units (K 512, 1024) get that many threads: on lavapipe a workgroup's
			// idle threads still pay for the reduction, and 32 threads took twice as long as 8 on K=512
			// rows for 4 tokens.
			wg = max(8, min(32, 1<<bits.Len(uint(units-1))))
		}
		return matvecShape{file: "matvec_" + wt + ".wgsl", wg: wg, rows: 8}
	}
	return matvecShape{file: "matvec.wgsl", wg: matvecWG, rows: matvecRows}
}

// matmulShape is a prefill mat-mat variant, matmul.wgsl's knobs: tm rows by tn tokens a workgroup, rm
// rows by rn tokens a thread (its register tile), f16 pairs in its workgroup-memory tiles. Every shape is a
// correct kernel; which is fastest depends on the adapter, so a tuner may choose among them.
type matmulShape struct {
	tm, tn, rm, rn int
	f16            bool
}

// matmulPreferred are the shapes used unless one is chosen, best first; a product takes the first its
// adapter accepts (matmulShape.check). 8x8 register tiles were the fastest on lavapipe
// (BenchmarkMatMulTiles, docs/BENCHMARKS.md); the 64x64 tile of a K-quant needs 32 KiB of workgroup
// memory, the 32x32 one fits WebGPU's default 16 KiB. F16 tiles, 1.4x faster on lavapipe, round weights
// and activations to halves (f16Tolerance in the tests), so they are used only where tuning chose them
// (or a test asks, deviceOptions.F16Tiles), never as the built-in choice.
var matmulPreferred = []matmulShape{
	{tm: 64, tn: 64, rm: 8, rn: 8},
	{tm: 32, tn: 32, rm: 8, rn: 8},
}

// matmulTileFor returns the mat-mat shape for weights of kernel type wt on d: the device's chosen one
// if set, else the first preferred shape the adapter accepts.
func matmulTileFor(d *device, wt string) (matmulShape, error) {
	if d.matmulTile != (matmulShape{}) {
		return d.matmulTile, d.matmulTile.check(d, wt)
	}
	var first error
	for _, s := range matmulPreferred {
		s.f16 = d.f16Tiles
		err := s.check(d, wt)
		if err == nil {
			return s, nil
		}
		first = cmp.Or(first, err)
	}
	return matmulShape{}, first
}

// matmulDQ4Tile is the weight tile of the types without their own (kernelType.own), which dequantizes 32
// deep through dq_{type}.wgsl; those with their own tile, mm_tile_{type}.wgsl, take it 64 deep.
var matmulDQ4Tile = mmTileFile{"dq4", 32}

// matmulTileOf returns the weight tile file of kernel type wt.
func matmulTileOf(wt string) mmTileFile {
	if ownKernels(wt) {
		return mmTileFile{wt, 64}
	}
	return matmulDQ4Tile
}

// mmTileFile is a weight tile file, mm_tile_{file}.wgsl, and the depth TK it sets.
type mmTileFile struct {
	file string
	tk   int
}

// matmulTileBytes is the workgroup memory of matmul.wgsl with tile s for weights of kernel type wt:
// TK x (tm + tn) floats (halves with f16) for the weight and activation tiles.
func matmulTileBytes(s matmulShape, wt string) int {
	elt := 4
	if s.f16 {
		elt = 2
	}
	return matmulTileOf(wt).tk * (s.tn + s.tm) * elt
}

func (s matmulShape) String() string {
	f := ""
	if s.f16 {
		f = " f16"
	}
	return fmt.Sprintf("%dx%d/%dx%d%s", s.tm, s.tn, s.rm, s.rn, f)
}

func (s matmulShape) threads() int { return (s.tm / s.rm) * (s.tn / s.rn) }

// check refuses shapes the kernel cannot run on d: register tiles of whole vec4s that divide the
// workgroup tile, and the adapter's limits on threads and workgroup memory.
func (s matmulShape) check(d *device, wt string) error {
	if s.rm <= 0 || s.rn <= 0 || s.rm%4 != 0 || s.rn%4 != 0 || s.tm%s.rm != 0 || s.tn%s.rn != 0 {
		return fmt.Errorf("mat-mat tile %s: rows and tokens per thread must be multiples of 4 that divide the workgroup's", s)
	}
	if n := s.threads(); n > int(d.limits.MaxComputeInvocationsPerWorkgroup) {
		return fmt.Errorf("mat-mat tile %s: %d threads exceed the adapter's %d per workgroup", s, n, d.limits.MaxComputeInvocationsPerWorkgroup)
	}
	if b := matmulTileBytes(s, wt); b > int(d.limits.MaxComputeWorkgroupStorageSize) {
		return fmt.Errorf("mat-mat tile %s: %d bytes of workgroup memory exceed the adapter's %d", s, b, d.limits.MaxComputeWorkgroupStorageSize)
	}
	return nil
}

// defs are the kernel defines of the shape for weights of kernel type wt (tile file from matmulTileOf).
func (s matmulShape) defs(wt string) shaders.Defines {
	defs := shaders.Defines{"TM": fmt.Sprint(s.tm), "TN": fmt.Sprint(s.tn), "RM": fmt.Sprint(s.rm), "RN": fmt.Sprint(s.rn),
		"F16": boolDef(s.f16), "TILE": matmulTileOf(wt).file}
	if !ownKernels(wt) {
		defs["WTYPE"] = wt // mm_tile_dq4.wgsl includes dq_{WTYPE}.wgsl
	}
	return defs
}

// matMulOp computes y[t][yOff + r] = sum_k W[r][k] x[t][k] for r < W.M, one dispatch per weight chunk.
// Decode (one token) runs the mat-vec mv, a few tokens (up to matvecMaxT) a variant of it from mvFew
// that takes several in each workgroup (matvecFewNT), more the tiled mat-mat mm, or the largest mvFew
// variant in as many workgroups as it takes where there is no mm (device.prefillMatVec).
type matMulOp struct {
	W      *weights
	mv, mm *kernel     // mm: nil where every step takes the mat-vec
	mvFew  []fewKernel // by ascending NT
	mvRows int         // rows per mat-vec workgroup
	mmTile matmulShape // of the mat-mat
	step   *buffer     // its own step uniform (NewMatMulRows), else nil: the device's
	stepT  int         // the token count step holds (0: none written yet)
	parts  []matPart
}

// fewKernel is a few-token mat-vec variant: nt tokens and rows rows a workgroup.
type fewKernel struct {
	k        *kernel
	nt, rows int
}

// few returns the few-token variant for a step of T tokens and its workgroups along z.
func (o *matMulOp) few(T int) (fewKernel, int) {
	f := o.mvFew[len(o.mvFew)-1]
	for _, c := range o.mvFew {
		if c.nt >= T {
			f = c
			break
		}
	}
	return f, ceilDiv(T, f.nt)
}

type matPart struct {
	bg   *wgpu.BindGroup
	rows int
}

// NewMatMul binds w to activations x (token t at element t*xStride) and outputs y (token t at
// t*yStride + yOff).
func (d *device) NewMatMul(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int) (*matMulOp, error) {
	return d.newMatMul(w, x, xStride, y, yStride, yOff, matOptions{})
}

// NewMatMulRows is NewMatMul for a product over rows picked from a step's tokens (the output projection
// of the wanted rows): its token count is the T it is recorded with, not the step's, so the kernels
// neither compute nor store rows past those (the output may hold fewer rows than the step has tokens).
func (d *device) NewMatMulRows(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int) (*matMulOp, error) {
	step, err := d.uniform(w.Name+" rows", 0, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	return d.newMatMul(w, x, xStride, y, yStride, yOff, matOptions{step: step})
}

// NewMatMulAdd is NewMatMul adding the product to what y holds, y[t][yOff + r] += sum_k W[r][k] x[t][k]:
// a residual connection fused into the projection that feeds it, one dispatch fewer per use.
func (d *device) NewMatMulAdd(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int) (*matMulOp, error) {
	return d.newMatMul(w, x, xStride, y, yStride, yOff, matOptions{accumulate: true})
}

// NewMatMulGLU is NewMatMul for the up projection of a SwiGLU feed-forward: y holds the gate projection
// and becomes silu(gate) * (W x), the input of the down projection, sparing a separate SiLU dispatch.
func (d *device) NewMatMulGLU(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int) (*matMulOp, error) {
	return d.newMatMul(w, x, xStride, y, yStride, yOff, matOptions{glu: true})
}

// NewMatMulRope is NewMatMul for a query or key projection: its outputs are heads of headDim, whose
// first ropeDim dims are rotated (RoPE, NORM pairs) by the (cos, sin) pairs in cs (token t pair i at
// t*ropeDim/2 + i) as they are stored, sparing a separate RoPE dispatch. The product starts at y's
// element 0 of each token; the weights' chunks must keep the pairs of rows together.
func (d *device) NewMatMulRope(w *weights, x bufRange, xStride int, y bufRange, yStride int, cs bufRange, headDim, ropeDim int) (*matMulOp, error) {
	// Pairs of rows (2i, 2i+1) of the whole product must be pairs within a head: even head sizes.
	if ropeDim%2 != 0 || ropeDim <= 0 || ropeDim > headDim || headDim%2 != 0 || w.M%headDim != 0 {
		return nil, fmt.Errorf("matmul %s: RoPE over %d of each head's %d dims of %d rows: want even counts, at most the head size, and whole heads",
			w.Name, ropeDim, headDim, w.M)
	}
	for _, c := range w.Chunks {
		if c.Row0%2 != 0 || c.Rows%2 != 0 {
			return nil, fmt.Errorf("matmul %s: a binding chunk of rows %d..%d splits a pair of rotated rows", w.Name, c.Row0, c.Row0+c.Rows-1)
		}
	}
	return d.newMatMul(w, x, xStride, y, yStride, 0, matOptions{rope: true, cs: cs, headDim: headDim, ropeDim: ropeDim})
}

// matOptions are the fused extras of a matrix product.
type matOptions struct {
	accumulate bool // add into y
	glu        bool // y = silu(y) * product
	rope       bool // rotate the output heads
	cs         bufRange
	headDim    int
	ropeDim    int
	step       *buffer     // the op's own step uniform (NewMatMulRows)
	tile       matmulShape // the mat-mat's tile, when not the device's choice for the shape
}

func (d *device) newMatMul(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int, o matOptions) (*matMulOp, error) {
	return d.newMatMulShape(w, x, xStride, y, yStride, yOff, o, d.matvecShapeOf(w))
}

// matvecShapeOf is the mat-vec variant for w: tuning's choice for its shape, else the built-in one
// (on the integer path where deviceOptions.Int8 asks for it and the device has it).
func (d *device) matvecShapeOf(w *weights) matvecShape {
	return d.matvecShapeAt(matShape{wt: kernelTypes[w.Type].suffix, k: w.K, m: w.M})
}

// matvecShapeAt is matvecShapeOf for a weight shape.
func (d *device) matvecShapeAt(key matShape) matvecShape {
	s, ok := d.tuned[key]
	if !ok {
		s = matvecShapeFor(key.wt, key.k)
		s.int8 = d.int8 && d.dot4 && ownKernels(key.wt)
	}
	if f, ok := d.tunedFew[key]; ok && f.tree == s.tree {
		s.few = f
	}
	return s
}

// newMatMulShape is newMatMul with the mat-vec variant given.
func (d *device) newMatMulShape(w *weights, x bufRange, xStride int, y bufRange, yStride, yOff int, o matOptions, shape matvecShape) (*matMulOp, error) {
	wt := kernelTypes[w.Type].suffix
	if xStride%4 != 0 || xStride < w.K {
		return nil, fmt.Errorf("matmul %s: x stride %d must be a multiple of 4 and at least K=%d", w.Name, xStride, w.K)
	}
	if yStride < yOff+w.M {
		return nil, fmt.Errorf("matmul %s: y stride %d too small for offset %d + %d rows", w.Name, yStride, yOff, w.M)
	}
	binds := weightBinds(w, matBinds)
	// Activations in a texture (NewActivationTexture): only the mat-vecs read them so, and only where
	// every step takes the mat-vec.
	xTex := x.Buf != nil && x.Buf.tex != nil
	if xTex {
		if !d.prefillMatVec {
			return nil, fmt.Errorf("matmul %s: activations in a texture need a device whose steps all take the mat-vec (a CPU-type adapter)", w.Name)
		}
		if x.Off != 0 || 4*int(x.Buf.tex.GetWidth()) < w.K {
			return nil, fmt.Errorf("matmul %s: activations in texture %s must be bound whole, with rows of at least K=%d floats", w.Name, x.Buf.label, w.K)
		}
		binds[1] = bindTexture
	}
	if o.rope {
		binds = append(binds, bindReadOnly)
	}
	// The few-token variants keep the one-token variant's reduction and numerics (the integer
	// path or not), so that a sequence's logits hardly depend on how many others share its step.
	mvKernel := func(nt int, g fewShape) (*kernel, error) {
		rows := g.rows
		// Shuffles add the rows of a subgroup of 8 (reduce.wgsl's SG8); a workgroup that is one such
		// subgroup stores the totals from the lanes (LANE_STORE), where a RoPE pair's partner is the
		// same lane's (an even number of rows a lane) or the neighbouring lane's (one row a lane).
		sg8 := d.shuffle8 && !g.tree && rows%8 == 0
		laneStore := sg8 && g.wg == 8 && (rows == 8 || rows%16 == 0)
		defs := weightDefs(w, shape.file != "matvec.wgsl", shaders.Defines{"WG": fmt.Sprint(g.wg), "ROWS": fmt.Sprint(rows), "NT": fmt.Sprint(nt),
			"FEW": boolDef(nt > 1), "ACCUM": boolDef(o.accumulate), "GLU": boolDef(o.glu), "ROPE": boolDef(o.rope),
			"INT8": boolDef(shape.int8), "SG8": boolDef(sg8), "LANE_STORE": boolDef(laneStore), "PAIR_LANES": boolDef(rows == 8),
			"XTEX": boolDef(xTex)})
		if shape.file == "matvec.wgsl" {
			defs["WTYPE"] = wt
		}
		return d.kernel(kernelSpec{file: shape.file, entry: "main", binds: binds, subgroups: !g.tree, defs: defs})
	}
	mv, err := mvKernel(1, fewShape{wg: shape.wg, rows: shape.rows, tree: shape.tree})
	if err != nil {
		return nil, err
	}
	var mvFew []fewKernel
	for _, nt := range matvecFewNT {
		g := d.fewShape(wt, nt, shape)
		k, err := mvKernel(nt, g)
		if err != nil {
			return nil, err
		}
		mvFew = append(mvFew, fewKernel{k: k, nt: nt, rows: g.rows})
	}
	op := &matMulOp{W: w, mv: mv, mvFew: mvFew, mvRows: shape.rows, step: o.step}
	if !d.prefillMatVec {
		if op.mm, op.mmTile, err = d.matMatKernel(w, binds, o); err != nil {
			return nil, err
		}
	}
	for _, c := range w.Chunks {
		p, err := d.uniform(w.Name+" params", w.K, c.Rows, w.RowBytes, yOff+c.Row0, xStride, yStride, o.headDim, o.ropeDim)
		if err != nil {
			return nil, err
		}
		ranges := []bufRange{whole(c.Buf), x, y}
		if o.rope {
			ranges = append(ranges, o.cs)
		}
		step := o.step
		if step == nil {
			step = d.step
		}
		bg, err := d.bindGroupStep(mv, p, step, ranges...)
		if err != nil {
			return nil, fmt.Errorf("matmul %s: %w", w.Name, err)
		}
		op.parts = append(op.parts, matPart{bg: bg, rows: c.Rows})
	}
	return op, nil
}

// fewShape is the workgroup shape of the nt-token mat-vec variant for weights of kernel type wt whose
// one-token variant is one: for the largest variant, tuning's choice (one.few, timed on that variant)
// where it made one; else one's threads and reduction with rows by type and adapter.
func (d *device) fewShape(wt string, nt int, one matvecShape) fewShape {
	if one.few != (fewShape{}) && nt == matvecFewMaxNT {
		return one.few
	}
	rows := matvecFewRows
	switch {
	case !ownKernels(wt):
		rows = one.rows
	case nt == 4 && d.cpuType() && reduceBytes(matvecFewRowsCPU, nt, one.wg) <= d.limits.MaxComputeWorkgroupStorageSize:
		rows = matvecFewRowsCPU
	}
	return fewShape{wg: one.wg, rows: rows, tree: one.tree}
}

// reduceBytes is the workgroup memory reduce.wgsl takes for rows × nt sums over wg threads: the totals,
// and the larger of its two reductions' partial sums (one per subgroup of at least 4 threads, or one
// per thread for the tree).
func reduceBytes(rows, nt, wg int) uint32 {
	return uint32(4 * (rows*nt + max(rows*nt*(wg/4), rows*wg)))
}

// matMatKernel builds the tiled mat-mat of w: the tile o asks for, else tuning's choice for its shape,
// else the first preferred one the adapter accepts.
func (d *device) matMatKernel(w *weights, binds []binding, o matOptions) (*kernel, matmulShape, error) {
	wt := kernelTypes[w.Type].suffix
	tile := o.tile
	if tile == (matmulShape{}) {
		tile = d.tunedTile[matShape{wt: wt, k: w.K, m: w.M}]
	}
	if tile == (matmulShape{}) {
		var err error
		if tile, err = matmulTileFor(d, wt); err != nil {
			return nil, tile, fmt.Errorf("matmul %s: %w", w.Name, err)
		}
	} else if err := tile.check(d, wt); err != nil {
		return nil, tile, fmt.Errorf("matmul %s: %w", w.Name, err)
	}
	defs := weightDefs(w, ownKernels(wt), tile.defs(wt))
	defs["ACCUM"], defs["GLU"], defs["ROPE"] = boolDef(o.accumulate), boolDef(o.glu), boolDef(o.rope)
	k, err := d.kernel(kernelSpec{file: "matmul.wgsl", entry: "main", binds: binds, defs: defs})
	return k, tile, err
}

// Record adds the product for T tokens.
func (o *matMulOp) Record(e *encoder, T int) {
	if o.step != nil && T != o.stepT {
		// The write lands before the submit that carries this recording (queue order); the op is
		// recorded at most once per submit, and only it writes its uniform, so a decode step (the same
		// count every token) writes it once.
		var data [16]byte
		binary.LittleEndian.PutUint32(data[0:], uint32(T))
		if err := e.d.Write(o.step, 0, data[:]); err != nil {
			if e.err == nil {
				e.err = err
			}
		} else {
			o.stepT = T
		}
	}
	for _, p := range o.parts {
		switch {
		case T == 1:
			x, y := grid(ceilDiv(p.rows, o.mvRows))
			e.Dispatch(o.mv, p.bg, x, y, 1)
		case T <= matvecMaxT || o.mm == nil:
			f, z := o.few(T)
			x, y := grid(ceilDiv(p.rows, f.rows))
			e.Dispatch(f.k, p.bg, x, y, uint32(z))
		default:
			x, y := grid(ceilDiv(p.rows, o.mmTile.tm))
			e.Dispatch(o.mm, p.bg, x, y, uint32(ceilDiv(T, o.mmTile.tn)))
		}
	}
}

// op is a kernel with one bind group and a dispatch shape that depends on T.
type op struct {
	k     *kernel
	bg    *wgpu.BindGroup
	shape func(T int) (x, y, z uint32)
	cost  opCost
}

// Record adds the op's dispatch for T tokens.
func (o *op) Record(e *encoder, T int) {
	x, y, z := o.shape(T)
	e.Dispatch(o.k, o.bg, x, y, z)
}

func (d *device) newSimple(spec kernelSpec, params []any, ranges []bufRange, shape func(T int) (x, y, z uint32), cost opCost) (*op, error) {
	k, err := d.kernel(spec)
	if err != nil {
		return nil, err
	}
	p, err := d.uniform(spec.file+" params", params...)
	if err != nil {
		return nil, err
	}
	bg, err := d.bindGroup(k, p, ranges...)
	if err != nil {
		return nil, err
	}
	return &op{k: k, bg: bg, shape: shape, cost: cost}, nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// NewRMSNorm normalizes rows of dim elements (token t at t*stride) of x into y with weight g.
func (d *device) NewRMSNorm(x, g, y bufRange, dim, stride int, eps float32) (*op, error) {
	return d.newSimple(kernelSpec{file: "rmsnorm.wgsl", entry: "main", binds: []binding{bindReadOnly, bindReadOnly, bindReadWrite}},
		[]any{dim, stride, eps}, []bufRange{x, g, y},
		func(T int) (uint32, uint32, uint32) { return uint32(T), 1, 1 },
		opCost{shape: fmt.Sprint(dim), cost: func(T, _ int) (float64, float64) {
			return float64(4 * (2*T*dim + dim)), float64(4 * T * dim) // x in, y out, g; square, sum, scale, gain
		}})
}

// NewKVStore copies the step's keys k and values v (row t at t*srcStride) into the paged caches kc, vc
// at cache row slots[t] (u32s); f16 selects the packed-half cache layout.
func (d *device) NewKVStore(k, v, kc, vc, slots bufRange, kvDim, srcStride int, f16 bool) (*op, error) {
	if kvDim%2 != 0 {
		return nil, fmt.Errorf("kv store: kv dim %d must be even", kvDim)
	}
	return d.newSimple(kernelSpec{file: "kv_store.wgsl", entry: "main", binds: []binding{bindReadOnly, bindReadOnly, bindReadWrite, bindReadWrite, bindReadOnly},
		defs: shaders.Defines{"KV_F16": boolDef(f16)}},
		[]any{kvDim, srcStride}, []bufRange{k, v, kc, vc, slots},
		func(T int) (uint32, uint32, uint32) { return uint32(ceilDiv(kvDim/2, 64)), uint32(T), 1 },
		opCost{shape: fmt.Sprint(kvDim), cost: func(T, _ int) (float64, float64) {
			return float64(2 * T * kvDim * (4 + cacheElt(f16))), 0 // k and v in, cache rows out
		}})
}

// cacheElt is the bytes of one cached key or value element.
func cacheElt(f16 bool) int {
	if f16 {
		return 2
	}
	return 4
}

func boolDef(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// attnShape describes grouped-query attention over a paged KV cache.
type attnShape struct {
	Heads, KVHeads, HeadDim int
	QStride, OutStride      int // floats per row in q and out
	KVStride                int // floats per row in the step's new keys and values
	Scale                   float32
	F16                     bool       // cache holds packed halves
	Batch                   *attnBatch // the step's sequences (kvpool.go), shared by the layers
}

// attnChunk is the cached positions one split decode workgroup takes (attention_decode.wgsl CH).
const attnChunk = 64

// attnGroup is how many query heads of one kv head a split decode workgroup takes: the largest divisor
// of the group size up to 4 (the lanes of a vec4), so all of them share each key and value load.
func attnGroup(s attnShape) int {
	g := s.Heads / s.KVHeads
	for w := min(g, 4); ; w-- {
		if g%w == 0 {
			return w
		}
	}
}

// attnPartialBytes is the scratch the split decode pass needs for one sequence of up to positions.
func attnPartialBytes(s attnShape, positions int) uint64 {
	return uint64(4 * ceilDiv(positions, attnChunk) * s.Heads * (s.HeadDim + 2))
}

// attentionOp stores the step's keys and values in a layer's paged KV cache (kv_store.wgsl, every row
// of every sequence in one dispatch) and attends each sequence's queries to its own positions. The
// sequences with several rows run attention.wgsl, one workgroup per kv head and block of rows of a
// sequence, walking the sequence's positions in tiles that all its query heads and rows share. Those
// with one row (decode) split their positions into chunks of attnChunk, one workgroup each per
// attnGroup heads, and merge the chunks in a second pass (attention_decode.wgsl): a lone workgroup per
// head would leave the device idle as the cache grows. Each kernel takes all its sequences in one
// dispatch (workgroup_id.z), sized by the step's attnBatch.
type attentionOp struct {
	s                attnShape
	store, prefill   *op
	partial, combine *kernel
	split, merge     *wgpu.BindGroup
	decodeCost       func(pos int) (bytes, flops float64)
	shape            string
}

// NewAttention stores the step's new keys k and values v (row t at t*KVStride) in the paged caches kc,
// vc (cache row r at r*KVHeads*HeadDim), attends the step's queries q to them, sequence by sequence as
// s.Batch describes, and writes out.
func (d *device) NewAttention(q, k, v, kc, vc, out bufRange, s attnShape) (*attentionOp, error) {
	if s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 || s.HeadDim%2 != 0 {
		return nil, fmt.Errorf("attention: %d heads over %d kv heads of %d dims not supported", s.Heads, s.KVHeads, s.HeadDim)
	}
	kvDim := s.KVHeads * s.HeadDim
	if s.KVStride < kvDim || s.KVStride%2 != 0 {
		return nil, fmt.Errorf("attention: new keys and values %d floats apart, want an even stride of at least %d", s.KVStride, kvDim)
	}
	a := s.Batch
	if a == nil {
		return nil, fmt.Errorf("attention: no batch layout")
	}
	store, err := d.NewKVStore(k, v, kc, vc, whole(a.slots), kvDim, s.KVStride, s.F16)
	if err != nil {
		return nil, err
	}
	params := []any{s.Heads, s.KVHeads, s.QStride, kvDim, s.OutStride, s.Scale, a.maxChunks, s.KVStride}
	gq := s.Heads / s.KVHeads
	bq := max(1, 64/gq) // attention.wgsl's BQ: rows a prefill workgroup takes
	cost := func(T, pos int) (float64, float64) {
		// Row t attends to pos+t+1 positions; each block of bq rows reads the positions it sees once.
		seen := T*pos + T*(T+1)/2
		rows := ceilDiv(T, bq)*pos + T*(T+1)/2/max(1, bq) + T
		bytes := 2*rows*s.KVHeads*s.HeadDim*cacheElt(s.F16) + 2*4*T*s.Heads*s.HeadDim
		return float64(bytes), float64(4 * s.Heads * s.HeadDim * seen) // q·k and weight·v
	}
	shape := fmt.Sprintf("%dx%d/%d", s.Heads, s.HeadDim, s.KVHeads)
	defs := shaders.Defines{"HD": fmt.Sprint(s.HeadDim), "KV_F16": boolDef(s.F16), "BL": fmt.Sprint(a.blockLen), "KV_ACCESS": "read"}
	prefill, err := d.newSimple(kernelSpec{file: "attention.wgsl", entry: "main",
		binds: []binding{bindReadOnly, bindReadOnly, bindReadOnly, bindReadWrite, bindReadOnly, bindReadOnly},
		defs:  withDef(defs, "GQ", fmt.Sprint(gq))},
		params, []bufRange{q, kc, vc, out, whole(a.prefill), whole(a.tables)},
		func(int) (uint32, uint32, uint32) {
			return uint32(s.KVHeads), uint32(ceilDiv(a.maxRows, bq)), uint32(a.nPrefill)
		},
		opCost{shape: shape, cost: cost})
	if err != nil {
		return nil, err
	}
	// The split pass stores its rows itself (KV_ACCESS read_write); the combine only reads partials.
	partial, err := d.kernel(kernelSpec{file: "attention_decode.wgsl", entry: "main",
		binds: []binding{bindReadOnly, bindReadWrite, bindReadWrite, bindReadWrite, bindReadOnly, bindReadOnly, bindReadOnly, bindReadOnly},
		defs:  withDef(withDef(defs, "GW", fmt.Sprint(attnGroup(s))), "KV_ACCESS", "read_write")})
	if err != nil {
		return nil, err
	}
	combine, err := d.kernel(kernelSpec{file: "attention_combine.wgsl", entry: "main",
		binds: []binding{bindReadOnly, bindReadOnly, bindReadOnly, bindReadOnly, bindReadOnly, bindReadOnly, bindReadWrite},
		defs:  defs})
	if err != nil {
		return nil, err
	}
	p, err := d.uniform("attention_decode.wgsl params", params...)
	if err != nil {
		return nil, err
	}
	split, err := d.bindGroup(partial, p, q, kc, vc, whole(a.partials), whole(a.decode), whole(a.tables), k, v)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	merge, err := d.bindGroup(combine, p, q, kc, vc, whole(a.partials), whole(a.decode), whole(a.tables), out)
	if err != nil {
		return nil, fmt.Errorf("attention: %w", err)
	}
	return &attentionOp{s: s, store: store, prefill: prefill, partial: partial, combine: combine, split: split, merge: merge, shape: shape,
		decodeCost: func(pos int) (float64, float64) {
			bytes, flops := cost(1, pos)
			// Each chunk writes and the combine reads back a partial per head.
			return bytes + float64(2*attnPartialBytes(s, pos+1)), flops
		}}, nil
}

// Record adds the attention of the step's sequences (attnBatch), and the kv store of its T rows when
// some sequence has several (a step of decode rows only leaves the store to the split pass).
func (o *attentionOp) Record(e *encoder, T int) {
	a := o.s.Batch
	if a.nPrefill > 0 {
		o.store.Record(e, T)
		o.prefill.Record(e, T)
	}
	if a.nDecode > 0 {
		x, y := o.s.decodeGrid(a.maxPos)
		e.Dispatch(o.partial, o.split, x, y, uint32(a.nDecode))
		e.Dispatch(o.combine, o.merge, uint32(o.s.Heads), uint32(a.nDecode), 1)
	}
}

// decodeGrid is the split decode pass's workgroups over n cached positions: head groups by chunks.
func (s attnShape) decodeGrid(n int) (x, y uint32) {
	return uint32(s.Heads / attnGroup(s)), uint32(ceilDiv(n, attnChunk))
}

// describe reports the op for one sequence of T rows after pos cached positions.
func (o *attentionOp) describe(T, pos int) opInfo {
	if T != 1 {
		st, at := o.store.describe(T, pos), o.prefill.describe(T, pos)
		return opInfo{Kernel: st.Kernel + " + " + at.Kernel, Shape: at.Shape, Bytes: st.Bytes + at.Bytes, Flops: st.Flops + at.Flops}
	}
	bytes, flops := o.decodeCost(pos)
	return opInfo{Kernel: variant(o.partial) + " + " + variant(o.combine), Shape: o.shape, Bytes: bytes, Flops: flops}
}

// rangeBytes is the bytes r binds.
func rangeBytes(r bufRange) uint64 {
	if r.Size != 0 {
		return r.Size
	}
	return r.Buf.Size - r.Off
}

func eltShape(n int) func(T int) (uint32, uint32, uint32) {
	return func(T int) (uint32, uint32, uint32) {
		x, y := grid(ceilDiv(T*n, 256))
		return x, y, 1
	}
}

// embedOp gathers and dequantizes rows of an embedding table: out[t] = E[tok[t]].
type embedOp struct {
	k     *kernel
	w     *weights
	parts []*wgpu.BindGroup
	dim   int
}

// NewEmbed binds table w, the token ids tok (u32) and the output out (token t at t*K floats).
func (d *device) NewEmbed(w *weights, tok, out bufRange) (*embedOp, error) {
	defs := weightDefs(w, false, shaders.Defines{"WTYPE": kernelTypes[w.Type].suffix})
	k, err := d.kernel(kernelSpec{file: "embed.wgsl", entry: "main", binds: weightBinds(w, []binding{bindReadOnly, bindReadOnly, bindReadWrite}),
		defs: defs})
	if err != nil {
		return nil, err
	}
	op := &embedOp{k: k, w: w, dim: w.K}
	for _, c := range w.Chunks {
		p, err := d.uniform(w.Name+" embed params", w.K, w.RowBytes, c.Row0, c.Rows)
		if err != nil {
			return nil, err
		}
		bg, err := d.bindGroup(k, p, whole(c.Buf), tok, out)
		if err != nil {
			return nil, fmt.Errorf("embed %s: %w", w.Name, err)
		}
		op.parts = append(op.parts, bg)
	}
	return op, nil
}

// Record gathers T tokens.
func (o *embedOp) Record(e *encoder, T int) {
	for _, bg := range o.parts {
		e.Dispatch(o.k, bg, uint32(ceilDiv(o.dim/4, 64)), uint32(T), 1)
	}
}

// argmaxChunk is the logits one argmax workgroup scans.
const argmaxChunk = 4096

// argmaxOp finds the largest of n logits (ties to the lower index) into an 8-byte result: index, value bits.
type argmaxOp struct {
	partial, finish *kernel
	bg              *wgpu.BindGroup
	nPart           int
	Result          *buffer
}

// NewArgmax binds the logits row at element off of logits.
func (d *device) NewArgmax(logits bufRange, n, off int) (*argmaxOp, error) {
	binds := []binding{bindReadOnly, bindReadWrite, bindReadWrite}
	partial, err := d.kernel(kernelSpec{file: "argmax.wgsl", entry: "partial", binds: binds})
	if err != nil {
		return nil, err
	}
	finish, err := d.kernel(kernelSpec{file: "argmax.wgsl", entry: "finish", binds: binds})
	if err != nil {
		return nil, err
	}
	nPart := ceilDiv(n, argmaxChunk)
	part, err := d.NewStorage("argmax partials", uint64(8*nPart))
	if err != nil {
		return nil, err
	}
	res, err := d.NewStorage("argmax result", 8)
	if err != nil {
		return nil, err
	}
	p, err := d.uniform("argmax params", n, off, argmaxChunk, nPart)
	if err != nil {
		return nil, err
	}
	bg, err := d.bindGroup(partial, p, logits, whole(part), whole(res))
	if err != nil {
		return nil, err
	}
	return &argmaxOp{partial: partial, finish: finish, bg: bg, nPart: nPart, Result: res}, nil
}

// Record adds both passes.
func (o *argmaxOp) Record(e *encoder) {
	e.Dispatch(o.partial, o.bg, uint32(o.nPart), 1, 1)
	e.Dispatch(o.finish, o.bg, 1, 1, 1)
}

// Top-k limits, matching topk.wgsl.
const (
	topkSlice = 1024
	// maxTopK is the largest candidate count the device top-k returns.
	maxTopK = 64
)

// topKOp finds the k largest of n logits in descending order into Result (k pairs of value bits, index).
type topKOp struct {
	partial, finish *kernel
	bg              *wgpu.BindGroup
	nPart, K        int
	Result          *buffer
}

// NewTopK binds the logits row at element off of logits.
func (d *device) NewTopK(logits bufRange, n, off, k int) (*topKOp, error) {
	if k < 1 || k > maxTopK || k > n {
		return nil, fmt.Errorf("top-k: k = %d must be in 1..%d and at most the %d logits", k, maxTopK, n)
	}
	binds := []binding{bindReadOnly, bindReadWrite, bindReadWrite}
	partial, err := d.kernel(kernelSpec{file: "topk.wgsl", entry: "partial", binds: binds})
	if err != nil {
		return nil, err
	}
	finish, err := d.kernel(kernelSpec{file: "topk.wgsl", entry: "finish", binds: binds})
	if err != nil {
		return nil, err
	}
	nPart := ceilDiv(n, topkSlice)
	part, err := d.NewStorage("top-k partials", uint64(8*nPart*k))
	if err != nil {
		return nil, err
	}
	res, err := d.NewStorage("top-k result", uint64(8*k))
	if err != nil {
		return nil, err
	}
	p, err := d.uniform("top-k params", n, off, k, nPart)
	if err != nil {
		return nil, err
	}
	bg, err := d.bindGroup(partial, p, logits, whole(part), whole(res))
	if err != nil {
		return nil, err
	}
	return &topKOp{partial: partial, finish: finish, bg: bg, nPart: nPart, K: k, Result: res}, nil
}

// Record adds both passes.
func (o *topKOp) Record(e *encoder) {
	e.Dispatch(o.partial, o.bg, uint32(o.nPart), 1, 1)
	e.Dispatch(o.finish, o.bg, 1, 1, 1)
}

// headOptions choose what NewHeadRope does to each head: QK-norm with gains G, and RoPE by the angles in
// CS (NEOX pairs or adjacent ones).
type headOptions struct {
	Norm bool
	G    bufRange
	Eps  float32
	Rope bool
	CS   bufRange // (cos, sin) per token and pair, RopeDim/2 pairs a token
	Neox bool
}

// NewHeadRope QK-norms and/or rotates in place the heads of headDim floats in x (token t head h at
// t*stride + h*headDim), heads of them a token (head_rope.wgsl): the query or key heads of families
// whose RoPE the projection cannot fuse (NEOX pairs, or a norm before the rotation).
func (d *device) NewHeadRope(x bufRange, heads, headDim, stride, ropeDim int, o headOptions) (*op, error) {
	if !o.Norm && !o.Rope {
		return nil, fmt.Errorf("head rope: neither a norm nor a rotation")
	}
	if o.Rope && (ropeDim <= 0 || ropeDim%2 != 0 || ropeDim > headDim) {
		return nil, fmt.Errorf("head rope: RoPE over %d of a head's %d dims: want an even count, at most the head size", ropeDim, headDim)
	}
	if stride < heads*headDim {
		return nil, fmt.Errorf("head rope: stride %d below %d heads of %d", stride, heads, headDim)
	}
	g, cs := o.G, o.CS
	if !o.Norm {
		g = cs // bound but unread
	}
	if !o.Rope {
		cs = g
	}
	kind := "rope"
	if o.Norm {
		kind = "norm+rope"
		if !o.Rope {
			kind = "norm"
		}
	}
	return d.newSimple(kernelSpec{file: "head_rope.wgsl", entry: "main", binds: []binding{bindReadOnly, bindReadOnly, bindReadWrite},
		defs: shaders.Defines{"NORM": boolDef(o.Norm), "ROPE": boolDef(o.Rope), "NEOX": boolDef(o.Neox)}},
		[]any{headDim, stride, ropeDim, o.Eps}, []bufRange{g, cs, x},
		func(T int) (uint32, uint32, uint32) { return uint32(heads), uint32(T), 1 },
		opCost{shape: fmt.Sprintf("%s %dx%d", kind, heads, headDim), cost: func(T, _ int) (float64, float64) {
			n := float64(T * heads * headDim)
			return 8 * n, 6 * n // read and write each value; square, sum, scale, rotate
		}})
}
