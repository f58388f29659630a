package gpu

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"smolchat/model"
	"smolchat/shaders"
)

// Self-tuning. Which workgroup shape makes a decode mat-vec fastest depends on the adapter: its
// subgroup width, its cores, its caches, its driver's compiler. No table written here can know a user's
// adapter, so the first load on an adapter times the candidate variants of every weight shape the model
// has, keeps the fastest, and writes the choices to a cache file; later loads read them. An entry is
// keyed by the adapter (name, vendor, backend, driver), a hash of the kernels' source (which stands for
// the smolchat version: a changed kernel is tuned again) and the weight shape, so models that share
// shapes share entries. A candidate that fails to build is skipped with a log line, never fatal.

// TuneMode says whether a load tunes the kernels.
type TuneMode string

const (
	TuneOff  TuneMode = "off"  // the built-in choices (matvecShapeFor); no timing, no file
	TuneAuto TuneMode = "auto" // use the cache file's choices, timing the shapes it lacks
	TuneRedo TuneMode = "redo" // time every shape again and rewrite its entries
)

// ParseTuneMode reads a --gpu-tune value; "" is off.
func ParseTuneMode(s string) (TuneMode, error) {
	switch m := TuneMode(s); m {
	case "":
		return TuneOff, nil
	case TuneOff, TuneAuto, TuneRedo:
		return m, nil
	}
	return "", fmt.Errorf("GPU tuning mode %q: want auto, off or redo", s)
}

// tuneOptions configure self-tuning at load.
type tuneOptions struct {
	Mode TuneMode
	// File is the cache of choices; "" means DefaultTuneFile().
	File string
	// Progress, if set, is called before each shape is timed and once at the end (done == total).
	Progress func(done, total int, what string)
	// Budget bounds the time spent timing; 0 means tuneTimeBudget.
	Budget time.Duration
	// maxVariants caps the variants raced per shape, the built-in one kept (tests of the cache and the
	// budget, which do not need every candidate compiled); 0 races all.
	maxVariants int
}

// defaultTuneFile is the choices' cache in the user's cache directory.
func defaultTuneFile() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the GPU tuning (%w): name a file with --gpu-tune-file", err)
	}
	return filepath.Join(dir, "smolchat", "gpu-tune.json"), nil
}

// TuneReport says what a load's tuning did.
type TuneReport struct {
	File    string        `json:"file"`
	Timed   int           `json:"timed"`  // shapes timed in this load
	Cached  int           `json:"cached"` // shapes whose choice came from the file
	Left    int           `json:"left"`   // shapes left for the next load: the time budget ran out
	Seconds float64       `json:"seconds"`
	Choices []TuneEntryAt `json:"choices"`
}

// TuneEntryAt is one shape's choice.
type TuneEntryAt struct {
	Shape string `json:"shape"`
	tuneEntry
}

// tuneEntry is a shape's choice as the file keeps it.
type tuneEntry struct {
	Variant string  `json:"variant"`           // matvecShape.String()
	Seconds float64 `json:"seconds"`           // the variant's time per dispatch (summed over the knob's steps)
	Default float64 `json:"default_seconds"`   // the built-in choice's, for comparison
	Tried   int     `json:"variants_tried"`    // candidates that built and ran
	Date    string  `json:"measured,omitzero"` // when
}

type tuneFile struct {
	Version int                  `json:"version"`
	Entries map[string]tuneEntry `json:"entries"`
}

const tuneFileVersion = 1

// matShape is a weight shape the decode mat-vec runs over: a key for tuning.
type matShape struct {
	wt   string // kernelTypes suffix
	k, m int
}

func (s matShape) String() string { return fmt.Sprintf("%s %dx%d", s.wt, s.m, s.k) }

// tuneRowsMax bounds the rows a shape is timed with: past a few thousand rows every workgroup shape
// fills the device and the time per row is what differs, so the 128256-row output projection is timed on
// its first rows rather than uploaded twice.
const tuneRowsMax = 4096

// tuneTileRows bounds the rows a prefill tile is timed on: a batch of tokens over 256 rows is work
// enough to rank the tiles (and seconds per candidate on a software adapter, which more rows would
// multiply).
const tuneTileRows = 256

// tuneTimeBudget bounds a load's tuning: the shapes not reached keep the built-in choices for this load
// and are timed at the next one (auto), so a slow adapter spreads its tuning over a few loads.
const tuneTimeBudget = 20 * time.Second

// tune chooses the mat-vec variant of every weight shape in W (device.tuned), reading and updating the
// cache file as opts.Mode says; parallel is how many sequences the engine decodes together (knobs).
func (b *backend) tune(W model.Weights, opts tuneOptions, parallel int) (*TuneReport, error) {
	if opts.Mode == TuneOff || opts.Mode == "" {
		return nil, nil
	}
	start := time.Now()
	file := opts.File
	if file == "" {
		var err error
		if file, err = defaultTuneFile(); err != nil {
			return nil, err
		}
	}
	cache, err := readTuneFile(file)
	if err != nil {
		// A damaged cache costs a re-tune, not the load.
		b.log.Warn("GPU tuning cache unreadable; tuning again", "file", file, "err", err)
		cache = &tuneFile{Version: tuneFileVersion, Entries: map[string]tuneEntry{}}
	}
	shapes, tensors := weightShapes(W)
	rep := &TuneReport{File: file}
	prefix := b.d.tuneKey()
	changed := false
	knobs := b.knobs(parallel)
	if n := opts.maxVariants; n > 0 {
		for i := range knobs {
			all := knobs[i].variants
			knobs[i].variants = func(wt string, k int) ([]string, string) {
				names, def := all(wt, k)
				if len(names) > n {
					names = append(slices.DeleteFunc(names[:n:n], func(v string) bool { return v == def }), def)
				}
				return names, def
			}
		}
	}
	total := len(knobs) * len(shapes)
	budget := cmp.Or(opts.Budget, tuneTimeBudget)
	// Where the weights live comes first: the other knobs are timed on the storage it chose. Only the
	// types with kernels of their own (the K-quants) can live in textures.
	if !b.d.weightTex && slices.ContainsFunc(shapes, func(s matShape) bool { return ownKernels(s.wt) }) {
		key := prefix + " | weights"
		e, ok := cache.Entries[key]
		if !ok || opts.Mode != TuneAuto || (e.Variant != storageBuffer && e.Variant != storageTexture) {
			if opts.Progress != nil {
				opts.Progress(0, total, "tuning GPU kernels: weight storage")
			}
			if e, err = b.raceStorage(shapes, tensors); err != nil {
				return nil, fmt.Errorf("tuning the weight storage: %w", err)
			}
			cache.Entries[key] = e
			changed = true
			rep.Timed++
		} else {
			rep.Cached++
		}
		b.d.weightTex = e.Variant == storageTexture
		rep.Choices = append(rep.Choices, TuneEntryAt{Shape: "weights", tuneEntry: e})
	}
	for ki, kn := range knobs {
		for i, s := range shapes {
			name := kn.kind + " " + s.String()
			if len(kn.tokens) > 1 {
				name += fmt.Sprintf(" (steps of 1 and %d tokens)", kn.tokens[1]) // parallel streams weigh in
			}
			if b.d.weightTex {
				name += " (tex)" // timed on the weights' storage: textures
			}
			key := prefix + " | " + name
			e, ok := cache.Entries[key]
			if ok && opts.Mode == TuneAuto && kn.use(s, e.Variant) {
				rep.Cached++
				rep.Choices = append(rep.Choices, TuneEntryAt{Shape: name, tuneEntry: e})
				continue
			}
			if rep.Timed > 0 && time.Since(start) > budget {
				rep.Left++ // (one shape a load at least, so a slow adapter still gets through)
				continue
			}
			if opts.Progress != nil {
				opts.Progress(ki*len(shapes)+i, total, "tuning GPU kernels: "+name)
			}
			e, err := b.race(kn, s, tensors[i])
			if err != nil {
				return nil, fmt.Errorf("tuning %s: %w", name, err)
			}
			kn.use(s, e.Variant)
			cache.Entries[key] = e
			changed = true
			rep.Timed++
			rep.Choices = append(rep.Choices, TuneEntryAt{Shape: name, tuneEntry: e})
		}
	}
	if opts.Progress != nil {
		opts.Progress(total, total, "tuning GPU kernels: done")
	}
	if changed {
		if err := writeTuneFile(file, cache); err != nil {
			// The choices hold for this load; the next one tunes again.
			b.log.Warn("GPU tuning cache not written", "file", file, "err", err)
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	b.log.Info("GPU kernels tuned", "file", file, "timed", rep.Timed, "cached", rep.Cached, "left for the next load", rep.Left,
		"took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// Tuning is what tuning did at load, nil when it was off.
func (b *backend) Tuning() *TuneReport { return b.tuning }

// weightShapes lists the distinct mat-vec shapes of W in the order the forward pass meets them, each
// with a tensor of that shape to time it on.
func weightShapes(W model.Weights) ([]matShape, []model.Tensor) {
	var shapes []matShape
	var tensors []model.Tensor
	add := func(t model.Tensor) {
		wt, ok := kernelTypes[t.Type]
		if !ok || t.Rows == 0 {
			return // the upload refuses it with its own message
		}
		s := matShape{wt: wt.suffix, k: t.Cols, m: t.Rows}
		if !slices.Contains(shapes, s) {
			shapes = append(shapes, s)
			tensors = append(tensors, t)
		}
	}
	for _, L := range W.Layers {
		for _, t := range []model.Tensor{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down} {
			add(t)
		}
	}
	if W.Output.Rows > 0 {
		add(W.Output)
	} else {
		add(W.Embed) // tied: the embedding table is the output projection
	}
	return shapes, tensors
}

// knob is one kernel choice tuning makes per weight shape: the decode mat-vec's workgroup shape, the
// prefill mat-mat's tile. Its variants are named by strings (the cache file's), so that one race serves
// both.
type knob struct {
	kind   string // "matvec" or "matmul"
	tokens []int  // the steps it is timed on, whose times add: decode's (below), the batch for prefill
	rows   int    // at most this many of the weight's rows are timed
	// variants lists the candidates for weight type wt and names the built-in choice.
	variants func(wt string, k int) (names []string, builtin string)
	// build makes the product of variant v over w; use records v as s's choice, false when v is not
	// a variant this build knows (a file from another version is tuned again).
	build func(w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error)
	use   func(s matShape, v string) bool
}

// knobs are the choices tuning makes: the mat-vec (decode; timed on 4096 rows) and the mat-mat tile
// (prefill, timed on 1024 rows and one batch of tokens; not where every step takes the mat-vec,
// device.prefillMatVec). F16 tiles are not candidates: they round the weights and activations
// (TestMatMulTiles' tolerance), which a user chooses, not the tuner.
//
// A mat-vec variant is timed on a step of one token and, when the engine runs parallel sequences or
// prompts take the mat-vec (device.prefillMatVec), on a step of up to four tokens (the few-token
// variant, which follows the one-token variant's threads and numerics): the two times add, so a
// variant that is fastest alone but slow beside other streams does not win. (On lavapipe the integer path won the output projection's
// one-token race and made four streams a third slower.)
func (b *backend) knobs(parallel int) []knob {
	d := b.d
	decode := []int{1}
	few := min(parallel, matvecFewNT[len(matvecFewNT)-1])
	if d.prefillMatVec {
		few = matvecFewNT[len(matvecFewNT)-1] // the few-token variant evaluates every prompt there
	}
	if few > 1 {
		decode = append(decode, few)
	}
	knobs := []knob{{
		kind: "matvec", tokens: decode, rows: tuneRowsMax,
		variants: func(wt string, k int) ([]string, string) {
			var names []string
			for _, c := range matvecCandidates(d, wt) {
				names = append(names, c.String())
			}
			return names, matvecShapeFor(wt, k).String()
		},
		build: func(w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error) {
			shape, _ := parseMatvecShape(kernelTypes[w.Type].suffix, v)
			return d.newMatMulShape(w, x, k, y, rows, 0, matOptions{}, shape)
		},
		use: func(s matShape, v string) bool {
			shape, ok := parseMatvecShape(s.wt, v)
			if ok {
				d.tuned[s] = shape
			}
			return ok
		},
	}, {
		kind: "matmul", tokens: []int{b.batch}, rows: tuneTileRows,
		variants: func(wt string, k int) ([]string, string) {
			var names []string
			for _, c := range matmulTuned() {
				if c.check(d, wt) == nil {
					names = append(names, c.String())
				}
			}
			def, _ := matmulTileFor(d, wt)
			return names, def.String()
		},
		build: func(w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error) {
			tile, _ := parseMatmulShape(v)
			return d.newMatMulShape(w, x, k, y, rows, 0, matOptions{tile: tile}, d.matvecShapeOf(w))
		},
		use: func(s matShape, v string) bool {
			tile, ok := parseMatmulShape(v)
			if ok && tile.check(d, s.wt) == nil {
				d.tunedTile[s] = tile
				return true
			}
			return false
		},
	}}
	if d.prefillMatVec {
		knobs = knobs[:1] // no mat-mat to tune: every step takes the mat-vec
	}
	return knobs
}

// race times every variant of kn on the first rows of t, on each of kn's steps, and returns the fastest
// (the least sum). Successive halving keeps it short: every candidate runs once (its first use, so a
// slow first run can only lose it the race), then the fastest few and the built-in choice are timed
// again and the medians decide.
func (b *backend) race(kn knob, s matShape, t model.Tensor) (tuneEntry, error) {
	d := b.d
	p, err := b.uploadTuning(s, t, d.weightTex && kernelTypes[t.Type].own, slices.Max(kn.tokens), kn.rows)
	if err != nil {
		return tuneEntry{}, err
	}
	defer p.free(d)
	w, x, y, rows := p.w, p.x, p.y, p.rows
	// timeSteps is op's time summed over kn's steps, each the median of reps timings.
	timeSteps := func(op *matMulOp, reps int) (float64, error) {
		var sum float64
		for _, T := range kn.tokens {
			if err := d.SetStep(T, 0); err != nil {
				return 0, err
			}
			sec, err := d.timeRecord(func(e *encoder) { op.Record(e, T) }, reps)
			if err != nil {
				return 0, err
			}
			sum += sec
		}
		return sum, nil
	}
	names, def := kn.variants(s.wt, s.k)
	type timed struct {
		name  string
		op    *matMulOp
		first float64
	}
	var runs []timed
	for _, v := range names {
		op, err := kn.build(w, whole(x), whole(y), s.k, rows, v)
		if err == nil {
			var sec float64
			if sec, err = timeSteps(op, 1); err == nil {
				runs = append(runs, timed{v, op, sec})
				continue
			}
		}
		if d.Err() != nil {
			return tuneEntry{}, err // the device is gone: nothing more to time
		}
		b.log.Info("GPU tuning: variant skipped", "kernel", kn.kind, "shape", s.String(), "variant", v, "err", err)
	}
	if len(runs) == 0 {
		return tuneEntry{}, errors.New("no variant ran")
	}
	slices.SortStableFunc(runs, func(a, b timed) int { return cmp.Compare(a.first, b.first) })
	best := tuneEntry{Seconds: -1, Tried: len(runs)}
	for i, r := range runs {
		if i >= tuneFinalists && r.name != def {
			continue
		}
		sec, err := timeSteps(r.op, 3)
		if err != nil {
			return tuneEntry{}, err
		}
		if r.name == def {
			best.Default = sec
		}
		if best.Seconds < 0 || sec < best.Seconds {
			best.Seconds, best.Variant = sec, r.name
		}
	}
	best.Date = time.Now().UTC().Format(time.DateOnly)
	return best, nil
}

// The weight storages tuning chooses between (weights.wgsl).
const (
	storageBuffer  = "buffers"
	storageTexture = "textures"
)

// raceStorage times the built-in decode mat-vec and prefill (the mat-mat; the mat-vec where every step
// takes it, device.prefillMatVec) of the largest weight shape of each type with kernels of its own
// (the K-quants, which textures can hold) from storage buffers and from textures, and chooses textures when their times, each relative to the buffers', multiply to less
// than one. Seconds and Default are the decode times per token over all those shapes, textures' and
// buffers'.
func (b *backend) raceStorage(shapes []matShape, tensors []model.Tensor) (tuneEntry, error) {
	largest := map[string]int{} // weight type: index in shapes
	for i, s := range shapes {
		if j, ok := largest[s.wt]; ownKernels(s.wt) && (!ok || s.m*s.k > shapes[j].m*shapes[j].k) {
			largest[s.wt] = i
		}
	}
	e := tuneEntry{Variant: storageBuffer, Tried: 2, Date: time.Now().UTC().Format(time.DateOnly)}
	ratio := 1.0
	for _, i := range largest {
		s, t := shapes[i], tensors[i]
		var dec, pre [2]float64 // buffers, textures
		for j, tex := range []bool{false, true} {
			var err error
			if dec[j], err = b.timeStorage(s, t, tex, 1, tuneRowsMax); err == nil {
				pre[j], err = b.timeStorage(s, t, tex, b.batch, tuneTileRows)
			}
			if err != nil && (!tex || b.d.Err() != nil) {
				return tuneEntry{}, err
			}
			if err != nil {
				b.log.Info("GPU tuning: variant skipped", "kernel", "weights", "shape", s.String(), "variant", storageTexture, "err", err)
				e.Tried, e.Seconds = 1, e.Default
				return e, nil
			}
		}
		e.Default += dec[0]
		e.Seconds += dec[1]
		ratio *= dec[1] / dec[0] * pre[1] / pre[0]
	}
	if ratio < 1 {
		e.Variant = storageTexture
	} else {
		e.Seconds = e.Default
	}
	return e, nil
}

// timeStorage is the time of the built-in product of T tokens over the first rows of t (shape s),
// uploaded to textures or to buffers.
func (b *backend) timeStorage(s matShape, t model.Tensor, tex bool, T, rows int) (float64, error) {
	d := b.d
	p, err := b.uploadTuning(s, t, tex, T, rows)
	if err != nil {
		return 0, err
	}
	defer p.free(d)
	op, err := d.newMatMulShape(p.w, whole(p.x), s.k, whole(p.y), p.rows, 0, matOptions{}, matvecShapeFor(s.wt, s.k))
	if err != nil {
		return 0, err
	}
	if err := d.SetStep(T, 0); err != nil {
		return 0, err
	}
	return d.timeRecord(func(e *encoder) { op.Record(e, T) }, 3)
}

// tuningProduct is what a timed product runs on: the first rows of a weight (in textures when tex),
// zero activations for T tokens, and the outputs.
type tuningProduct struct {
	w    *weights
	x, y *buffer
	rows int
}

// uploadTuning uploads the first rows (at most) of t, of shape s, with activations and outputs for T
// tokens.
func (b *backend) uploadTuning(s matShape, t model.Tensor, tex bool, T, rows int) (*tuningProduct, error) {
	d := b.d
	p := &tuningProduct{rows: min(s.m, rows)}
	rb := len(t.Data) / t.Rows
	var err error
	if p.w, err = d.uploadWeights(t.Name+" (tuning)", t.Type, s.k, p.rows, t.Data[:p.rows*rb], nil, tex); err == nil {
		if p.x, err = d.UploadF32("tuning x", make([]float32, T*s.k)); err == nil {
			p.y, err = d.NewStorage("tuning y", uint64(4*T*p.rows))
		}
	}
	if err != nil {
		p.free(d)
		return nil, err
	}
	return p, nil
}

// free releases what uploadTuning made.
func (p *tuningProduct) free(d *device) {
	if p.w != nil {
		for _, c := range p.w.Chunks {
			d.free(c.Buf)
		}
	}
	for _, b := range []*buffer{p.x, p.y} {
		if b != nil {
			d.free(b)
		}
	}
}

// tuneFinalists is how many of the fastest first runs are timed again.
const tuneFinalists = 3

// timingSpan is the device time one timed submit aims for: long enough to see past a submit's fixed cost,
// short enough that a whole model tunes in seconds.
const timingSpan = 2 * time.Millisecond

// timeRecord returns the device time of what rec records, per recording: the median of reps submits
// of a batch of recordings sized to take about timingSpan (one recording alone, first, sizes it and
// counts when reps is 1).
func (d *device) timeRecord(rec func(e *encoder), reps int) (float64, error) {
	submit := func(n int) (float64, error) {
		e, err := d.NewEncoder("tuning")
		if err != nil {
			return 0, err
		}
		for range n {
			rec(e)
		}
		start := time.Now()
		if err := e.Submit(); err != nil {
			return 0, err
		}
		if err := d.Wait(); err != nil {
			return 0, err
		}
		return time.Since(start).Seconds() / float64(n), nil
	}
	first, err := submit(1)
	if err != nil || reps <= 1 {
		return first, err
	}
	n := max(1, min(64, int(timingSpan.Seconds()/max(first, 1e-9))))
	runs := make([]float64, reps)
	for i := range runs {
		if runs[i], err = submit(n); err != nil {
			return 0, err
		}
	}
	slices.Sort(runs)
	return runs[reps/2], nil
}

// matvecCandidates are the workgroup shapes tuning tries for weight type wt: threads per workgroup and
// rows per workgroup (even, for RoPE pairs), each with the device's reduction and, where that is the
// subgroup one, also with the workgroup-memory tree; for the K-quants on a device with packed integer dot
// products, the integer path too (up to 16 rows). Shapes beyond the device's invocation or
// workgroup-memory limits are left out.
func matvecCandidates(d *device, wt string) []matvecShape {
	file, wgs, rows := "matvec.wgsl", []int{64, 128, 256}, []int{2, 4, 8}
	if ownKernels(wt) {
		file, wgs, rows = "matvec_"+wt+".wgsl", []int{8, 16, 32, 64, 128}, []int{8, 16, 32}
	}
	reductions := []bool{false}
	if d.subgroups {
		reductions = []bool{false, true}
	}
	var out []matvecShape
	for _, wg := range wgs {
		for _, r := range rows {
			// reduce.wgsl's first ROWS threads write the totals; its sums must fit workgroup memory.
			if r > wg || uint32(wg) > d.limits.MaxComputeInvocationsPerWorkgroup || reduceBytes(r, 1, wg) > d.limits.MaxComputeWorkgroupStorageSize {
				continue
			}
			for _, tree := range reductions {
				out = append(out, matvecShape{file: file, wg: wg, rows: r, tree: tree})
				// The integer path with the device's reduction, for the K-quants where it compiles.
				if d.dot4 && ownKernels(wt) && !tree && r <= 16 {
					out = append(out, matvecShape{file: file, wg: wg, rows: r, int8: true})
				}
			}
		}
	}
	return out
}

// String names a variant as the cache file keeps it: reduce=auto is the device's reduction (subgroups
// where it has them), reduce=tree the workgroup-memory tree even there.
func (s matvecShape) String() string {
	red := "auto"
	if s.tree {
		red = "tree"
	}
	path := ""
	if s.int8 {
		path = " int8"
	}
	return fmt.Sprintf("wg=%d rows=%d reduce=%s%s", s.wg, s.rows, red, path)
}

// matmulCandidates are the mat-mat shapes tuning tries (and the tests check): register tiles of 8x8, 4x4
// and 8x4 per thread, wide and narrow workgroups. An adapter's limits (workgroup memory, threads) leave
// some out (matmulShape.check).
var matmulCandidates = []matmulShape{
	{tm: 64, tn: 64, rm: 8, rn: 8},
	{tm: 64, tn: 32, rm: 8, rn: 8},
	{tm: 32, tn: 64, rm: 8, rn: 8},
	{tm: 64, tn: 64, rm: 4, rn: 4},
	{tm: 64, tn: 32, rm: 8, rn: 4},
	{tm: 128, tn: 32, rm: 8, rn: 8},
	{tm: 64, tn: 16, rm: 4, rn: 16},
	{tm: 32, tn: 32, rm: 8, rn: 8},
	{tm: 128, tn: 64, rm: 8, rn: 8},
}

// matmulTuned are the shapes tuning times: every candidate with f32 tiles, and those with 8x8 register
// tiles also with f16 pairs, which halve the words moved through workgroup memory per multiply-add
// (1.4x faster on lavapipe, docs/BENCHMARKS.md) for a rounding of weights and activations to halves
// within f16Tolerance (the tests), as llama.cpp's Vulkan mat-mat rounds them.
func matmulTuned() []matmulShape {
	out := slices.Clone(matmulCandidates)
	for _, c := range matmulCandidates {
		if c.rm == 8 && c.rn == 8 {
			c.f16 = true
			out = append(out, c)
		}
	}
	return out
}

// parseMatmulShape reads a tile's name (matmulShape.String) back.
func parseMatmulShape(v string) (matmulShape, bool) {
	var s matmulShape
	n, err := fmt.Sscanf(v, "%dx%d/%dx%d", &s.tm, &s.tn, &s.rm, &s.rn)
	s.f16 = strings.HasSuffix(v, " f16")
	if err != nil || n != 4 || s.String() != v {
		return matmulShape{}, false
	}
	return s, true
}

// parseMatvecShape reads a cached variant back; false when it is not one of this build's candidates'
// forms (a file from another version is tuned again).
func parseMatvecShape(wt, v string) (matvecShape, bool) {
	var s matvecShape
	var red string
	v, s.int8 = strings.CutSuffix(v, " int8")
	if s.int8 && !ownKernels(wt) {
		return s, false
	}
	if _, err := fmt.Sscanf(v, "wg=%d rows=%d reduce=%s", &s.wg, &s.rows, &red); err != nil || s.wg <= 0 || s.rows <= 0 || s.rows%2 != 0 {
		return s, false
	}
	switch red {
	case "tree":
		s.tree = true
	case "auto":
	default:
		return s, false
	}
	s.file = matvecShapeFor(wt, 256).file
	return s, true
}

// tuneKey names the adapter and the kernels' source in a cache key.
func (d *device) tuneKey() string {
	h := sha256.New()
	for _, name := range shaders.Names() {
		src, _ := shaders.Raw(name)
		h.Write([]byte(name + "\x00" + src + "\x00"))
	}
	a := d.Info
	return strings.Join([]string{a.Name, a.Vendor, a.Backend, a.Driver, "kernels " + hex.EncodeToString(h.Sum(nil))[:16]}, " | ")
}

func readTuneFile(path string) (*tuneFile, error) {
	f := &tuneFile{Version: tuneFileVersion, Entries: map[string]tuneEntry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, f); err != nil {
		return f, err
	}
	if f.Version != tuneFileVersion || f.Entries == nil {
		return &tuneFile{Version: tuneFileVersion, Entries: map[string]tuneEntry{}}, nil
	}
	return f, nil
}

// writeTuneFile replaces the file whole (a temporary file renamed over it), so a reader never sees half
// of it.
func writeTuneFile(path string, f *tuneFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gpu-tune-*.json")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
