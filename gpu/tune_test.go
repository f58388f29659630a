package gpu

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smolchat/gpu/ref"
	"smolchat/model/quant"
)

// TestMatvecCandidates runs every mat-vec variant tuning may choose against the CPU twin (ref.MatVec), on
// the awkward shapes of matCases and for one and three tokens: a variant the tuner picks must compute
// what the built-in one does. Every variant runs on the first case of each type; the other cases, whose
// awkward shapes the built-in variant meets too, run the built-in one and its integer twin (each
// variant is two kernels to compile, which on lavapipe is most of the test's time). The integer variants are compared on the activations they see
// (ref.QuantizeQ8x16) with a tolerance of 1e-3 instead of 1e-4: a product the GPU fuses may round a
// quantization tie the other way, moving one activation by a step.
func TestMatvecCandidates(t *testing.T) {
	d := testDevice(t)
	seen := map[quant.Type]bool{}
	for _, c := range matCases {
		wt := kernelTypes[c.typ].suffix
		shapes := matvecCandidates(d, wt)
		if seen[c.typ] {
			builtIn := matvecShapeFor(wt, c.k)
			shapes = []matvecShape{builtIn}
			if d.dot4 && ownKernels(wt) {
				builtIn.int8 = true
				shapes = append(shapes, builtIn)
			}
		}
		seen[c.typ] = true
		for _, shape := range shapes {
			for _, T := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/%dx%d/%s/T%d", c.typ, c.m, c.k, shape, T), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(c.m), uint64(c.k*T)))
					raw, deq := quantized(t, r, c.typ, c.m, c.k)
					w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
					x := randF32(r, T*c.k, 1)
					xb := must[*buffer](t)(d.UploadF32("x", x))
					yb := must[*buffer](t)(d.NewStorage("y", uint64(4*T*c.m)))
					op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xb), c.k, whole(yb), c.m, 0, matOptions{}, shape))
					run(t, d, T, 0, func(e *encoder) { op.Record(e, T) })
					y := mustF32(t, d, yb, 0, T*c.m)
					for tok := range T {
						xt, tol := x[tok*c.k:(tok+1)*c.k], 1e-4
						if shape.int8 {
							xt, tol = ref.QuantizeQ8x16(xt), 1e-3
						}
						want := ref.MatVec(deq, c.m, c.k, xt)
						if e := relErr(y[tok*c.m:(tok+1)*c.m], want); e > tol {
							t.Errorf("token %d: max relative error %.3g > %g", tok, e, tol)
						}
					}
				})
			}
		}
	}
}

// TestFewCandidates runs every few-token workgroup shape tuning may choose (fewCandidates), with each
// reduction and on the integer path where the device has it, on steps of three and four tokens (the
// four-token variant, which takes the choice, with a token missing and whole; and two, the two-token
// variant beside it) over the first case of each type, against the one-token variant's products token
// by token: a choice must compute what the one-token variant does, to TestMatVecFewMatchesOne's 1e-5.
func TestFewCandidates(t *testing.T) {
	d := testDevice(t)
	seen := map[quant.Type]bool{}
	for _, c := range matCases {
		if seen[c.typ] {
			continue
		}
		seen[c.typ] = true
		wt := kernelTypes[c.typ].suffix
		r := rand.New(rand.NewPCG(uint64(c.m), uint64(c.k)))
		raw, _ := quantized(t, r, c.typ, c.m, c.k)
		w := must[*weights](t)(d.UploadWeights("w", c.typ, c.k, c.m, raw, nil))
		const T = 4
		x := randF32(r, T*c.k, 1)
		xb := must[*buffer](t)(d.UploadF32("x", x))
		yb := must[*buffer](t)(d.NewStorage("y", uint64(4*T*c.m)))
		var ones []matvecShape // the one-token variants: each reduction, and the integer path
		for _, tree := range []bool{false, true} {
			one := matvecShapeFor(wt, c.k)
			one.tree = tree
			ones = append(ones, one)
			if !tree && d.dot4 && ownKernels(wt) {
				one.int8 = true
				ones = append(ones, one)
			}
		}
		for _, one := range ones {
			want := productsAlone(t, d, w, c, one, x, yb)
			for _, g := range fewCandidates(d, wt, one.tree) {
				shape := one
				shape.few = g
				t.Run(fmt.Sprintf("%s/%dx%d/%s/few wg=%d rows=%d", c.typ, c.m, c.k, one, g.wg, g.rows), func(t *testing.T) {
					op := must[*matMulOp](t)(d.newMatMulShape(w, whole(xb), c.k, whole(yb), c.m, 0, matOptions{}, shape))
					if f := op.mvFew[len(op.mvFew)-1]; f.rows != g.rows {
						t.Fatalf("the %d-token variant has %d rows a workgroup, want the chosen %d", f.nt, f.rows, g.rows)
					}
					for _, n := range []int{2, 3, 4} {
						checkFewMatchesOne(t, d, op, c, n, yb, want)
					}
				})
			}
		}
	}
}

// TestFewKnobUse: a cached few-token choice is taken only when it keeps the one-token choice's numerics
// and reduction and is one of the candidates; anything else is timed again.
func TestFewKnobUse(t *testing.T) {
	d := testDevice(t)
	tuned, tunedFew := maps.Clone(d.tuned), maps.Clone(d.tunedFew)
	t.Cleanup(func() { d.tuned, d.tunedFew = tuned, tunedFew })
	b := &backend{d: d, batch: 64}
	s := matShape{wt: "q4_k", k: 512, m: 1536}
	kn := b.fewKnob(4)
	for _, c := range []struct {
		one  matvecShape
		v    string
		want bool
	}{
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32}, "wg=8 rows=32 reduce=auto", true},
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32}, "wg=8 rows=32 reduce=tree", false},      // another reduction
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32}, "wg=8 rows=32 reduce=auto int8", false}, // other numerics
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32, int8: true}, "wg=8 rows=32 reduce=auto", false},
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32, int8: true}, "wg=8 rows=32 reduce=auto int8", true},
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32}, "wg=8 rows=6 reduce=auto", false}, // not a candidate
		{matvecShape{file: "matvec_q4_k.wgsl", wg: 32, rows: 32}, "wg=8 rows=32", false},
	} {
		clear(d.tunedFew)
		d.tuned[s] = c.one
		got := kn.use(s, c.v)
		_, recorded := d.tunedFew[s]
		if got != c.want || recorded != c.want || (got && d.matvecShapeAt(s).few == fewShape{}) {
			t.Errorf("one-token %s, cached few %q: used %v (recorded %+v), want %v", c.one, c.v, got, d.tunedFew[s], c.want)
		}
	}
}

// TestMatvecShapeStrings checks that every candidate's name reads back as itself, as the cache file
// needs, and that names of other forms are refused (a file from another version is tuned again).
func TestMatvecShapeStrings(t *testing.T) {
	d := testDevice(t)
	for _, wt := range []string{"f32", "q8_0", "q4_k", "q6_k"} {
		for _, c := range matvecCandidates(d, wt) {
			got, ok := parseMatvecShape(wt, c.String())
			if !ok || got != c {
				t.Errorf("%s: %q reads back as %+v (%v), want %+v", wt, c.String(), got, ok, c)
			}
		}
	}
	for _, bad := range []string{"", "wg=64", "wg=64 rows=3 reduce=auto", "wg=0 rows=4 reduce=auto", "wg=64 rows=4 reduce=magic"} {
		if _, ok := parseMatvecShape("q4_k", bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, c := range matmulTuned() {
		if got, ok := parseMatmulShape(c.String()); !ok || got != c {
			t.Errorf("%q reads back as %+v (%v)", c.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "64x64", "64x64/8x8 f32", "64x64/8x8x", "64x64/8x8 f16 f16"} {
		if _, ok := parseMatmulShape(bad); ok {
			t.Errorf("tile %q accepted", bad)
		}
	}
}

// TestTune loads a synthetic SmolLM3 three times over one cache file: auto times every shape and
// writes the file, auto again reads every choice from it, redo times them again. The tuned backend's
// logits match an untuned one's. A damaged file costs a re-tune, not the load. The backends take the
// mat-mat for prefill even on a CPU-type adapter (MatMat), so that every knob is tuned.
func TestTune(t *testing.T) {
	m := synthModel(t)
	file := filepath.Join(t.TempDir(), "tune.json")
	ws, _ := weightShapes(m.Weights)
	shapes := 3*len(ws) + 1 // a mat-vec, its few-token variants' and a mat-mat choice each, and where the weights live
	prompt := []int32{1, 2, 3, 4, 5}
	logits := func(b *backend) []float32 {
		l, err := b.Forward(context.Background(), prompt, []int{len(prompt) - 1})
		if err != nil {
			t.Fatal(err)
		}
		return l[0]
	}
	mm := deviceOptions{MatMat: true}
	untuned := openTestBackend(t, m, options{deviceOptions: mm})
	if untuned.Tuning() != nil {
		t.Fatal("the zero Options tuned")
	}
	want := logits(untuned)
	untuned.Close()

	var first []TuneEntryAt
	for i, c := range []struct {
		mode          TuneMode
		timed, cached int
		damage        bool
	}{
		{TuneAuto, shapes, 0, false},
		{TuneAuto, 0, shapes, false},
		{TuneRedo, shapes, 0, false},
		{TuneAuto, shapes, 0, true},
	} {
		if c.damage {
			if err := os.WriteFile(file, []byte("{not json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var progress []string
		b := openTestBackend(t, m, options{deviceOptions: mm, Tune: tuneOptions{Mode: c.mode, File: file, Budget: time.Hour, maxVariants: 4, Progress: func(done, total int, what string) {
			progress = append(progress, fmt.Sprintf("%d/%d %s", done, total, what))
		}}})
		rep := b.Tuning()
		if rep == nil || rep.Timed != c.timed || rep.Cached != c.cached || len(rep.Choices) != shapes {
			t.Fatalf("load %d (%s): report %+v, want %d timed and %d cached of %d choices", i, c.mode, rep, c.timed, c.cached, shapes)
		}
		if wantLines := c.timed + 1; len(progress) != wantLines {
			t.Errorf("load %d: progress %q, want a line per timed shape and one at the end", i, progress)
		}
		for _, ch := range rep.Choices {
			if ch.Shape == "weights" {
				if (ch.Variant != storageBuffer && ch.Variant != storageTexture) || ch.Seconds <= 0 {
					t.Errorf("load %d: weight storage %+v", i, ch)
				}
				continue
			}
			_, mv := parseMatvecShape("q4_k", ch.Variant)
			_, mm := parseMatmulShape(ch.Variant)
			if ok := map[bool]bool{true: mv, false: mm}[strings.HasPrefix(ch.Shape, "matvec ")]; !ok || ch.Seconds <= 0 {
				t.Errorf("load %d: choice %+v", i, ch)
			}
			// The engine decodes engine.DefaultParallel sequences together: the mat-vecs are timed on
			// their four-token steps too, and the few-token variants on those alone.
			few := strings.HasPrefix(ch.Shape, "matvec few ")
			if mv && !few && !strings.Contains(ch.Shape, " (steps of 1 and 4 tokens)") {
				t.Errorf("load %d: mat-vec choice %q not timed on a step of 4 sequences", i, ch.Shape)
			}
			if few && !strings.Contains(ch.Shape, " (steps of 4 tokens)") {
				t.Errorf("load %d: few-token choice %q not timed on a step of 4 sequences alone", i, ch.Shape)
			}
		}
		if i == 0 {
			first = rep.Choices
		}
		if i == 1 && !slices.Equal(rep.Choices, first) {
			t.Errorf("the cached choices %+v differ from the timed ones %+v", rep.Choices, first)
		}
		// A choice of the integer path quantizes activations to 8 bits (TestArchConformance bounds that
		// against llama.cpp); the others compute what the built-in variants do.
		tol := 1e-4
		for _, ch := range rep.Choices {
			if strings.HasSuffix(ch.Variant, " int8") {
				tol = 5e-2
			}
		}
		if e := relErr(logits(b), want); e > tol {
			t.Errorf("load %d: tuned logits differ from untuned ones by %.3g (limit %g)", i, e, tol)
		}
		b.Close()
	}
	var f tuneFile
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &f); err != nil || len(f.Entries) != shapes {
		t.Fatalf("cache file: %d entries (%v), want %d:\n%s", len(f.Entries), err, shapes, data)
	}

	// A spent time budget leaves the shapes to the next load, which times them.
	budgetFile := filepath.Join(t.TempDir(), "budget.json")
	b := openTestBackend(t, m, options{deviceOptions: mm, Tune: tuneOptions{Mode: TuneAuto, File: budgetFile, Budget: time.Nanosecond, maxVariants: 4}})
	if rep := b.Tuning(); rep.Timed != 1 || rep.Left != shapes-1 {
		t.Errorf("a spent budget: %d timed and %d left, want 1 (a load times one at least) and %d", rep.Timed, rep.Left, shapes-1)
	}
	b.Close()
	b = openTestBackend(t, m, options{deviceOptions: mm, Tune: tuneOptions{Mode: TuneAuto, File: budgetFile, Budget: time.Hour, maxVariants: 4}})
	if rep := b.Tuning(); rep.Timed != shapes-1 || rep.Cached != 1 || rep.Left != 0 {
		t.Errorf("the next load: %d timed, %d cached, %d left; want %d, 1, 0", rep.Timed, rep.Cached, rep.Left, shapes-1)
	}
}

func TestParseTuneMode(t *testing.T) {
	for in, want := range map[string]TuneMode{"": TuneOff, "off": TuneOff, "auto": TuneAuto, "redo": TuneRedo} {
		if got, err := ParseTuneMode(in); err != nil || got != want {
			t.Errorf("ParseTuneMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseTuneMode("fast"); err == nil {
		t.Error(`ParseTuneMode("fast") accepted`)
	}
}

// TestTuneKnobs: where every step takes the mat-vec (prefillMatVec) tuning has no mat-mat tile to
// choose and times the mat-vec on a four-token step even for one stream, since its few-token variant
// evaluates the prompts, and chooses that variant's shape; elsewhere it tunes the mat-vec and the
// mat-mat, the few-token step only for parallel streams and the four-token variant's shape only for four
// or more.
func TestTuneKnobs(t *testing.T) {
	d := testDevice(t)
	b := &backend{d: d, batch: 64}
	for _, c := range []struct {
		matVec   bool
		parallel int
		kinds    []string
		tokens   []int // the mat-vec's
	}{
		{false, 1, []string{"matvec", "matmul"}, []int{1}},
		{false, 2, []string{"matvec", "matmul"}, []int{1, 2}},
		{false, 4, []string{"matvec", "matvec few", "matmul"}, []int{1, 4}},
		{true, 1, []string{"matvec", "matvec few"}, []int{1, 4}},
		{true, 4, []string{"matvec", "matvec few"}, []int{1, 4}},
	} {
		usePrefillPath(t, d, c.matVec)
		ks := b.knobs(c.parallel)
		var kinds []string
		for _, k := range ks {
			kinds = append(kinds, k.kind)
		}
		if !slices.Equal(kinds, c.kinds) || !slices.Equal(ks[0].tokens, c.tokens) {
			t.Errorf("prefillMatVec %v, parallel %d: knobs %v, mat-vec steps %v; want %v and %v", c.matVec, c.parallel, kinds, ks[0].tokens, c.kinds, c.tokens)
		}
		if len(ks) > 1 && ks[1].kind == "matvec few" && (!slices.Equal(ks[1].tokens, []int{4}) || ks[1].steps != " (steps of 4 tokens)") {
			t.Errorf("prefillMatVec %v, parallel %d: the few-token knob times %v (%q), want the four-token step", c.matVec, c.parallel, ks[1].tokens, ks[1].steps)
		}
	}
}
