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
			knobs[i].variants = func(s matShape) ([]string, string) {
				names, def := all(s)
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
			name := kn.kind + " " + s.String() + kn.steps
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

// knob is one kernel choice tuning makes per weight shape: the decode mat-vec's workgroup shape, its
// few-token variants' shape, the prefill mat-mat's tile. Its variants are named by strings (the cache
// file's), so that one race serves them all.
type knob struct {
	kind   string // "matvec", "matvec few" or "matmul"
	steps  string // what the cache key adds about the steps timed, e.g. " (steps of 1 and 4 tokens)"
	tokens []int  // the steps it is timed on, whose times add: decode's (below), the batch for prefill
	rows   int    // at most this many of the weight's rows are timed
	// variants lists the candidates for weight shape s and names the built-in choice.
	variants func(s matShape) (names []string, builtin string)
	// build makes the product of variant v over w, the first rows of a weight of shape s; use records
	// v as s's choice, false when v is not a variant this build knows (a file from another version is
	// tuned again).
	build func(s matShape, w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error)
	use   func(s matShape, v string) bool
}

// knobs are the choices tuning makes: the mat-vec (decode; timed on 4096 rows) and the mat-mat tile
// (prefill, timed on 1024 rows and one batch of tokens; not where every step takes the mat-vec,
// device.prefillMatVec). F16 tiles are not candidates: they round the weights and activations
// (TestMatMulTiles' tolerance), which a user chooses, not the tuner.
//
// A mat-vec variant is timed on a step of one token and, when the engine runs parallel sequences or
// prompts take the mat-vec (device.prefillMatVec), on a step of up to four tokens (the few-token
// variant with its built-in shape, which follows the one-token variant's threads and numerics): the two
// times add, so that numerics and a reduction that are fastest alone but slow beside other streams do
// not win. (On lavapipe the integer path won the output projection's one-token race and made four
// streams a third slower.) Then, where the four-token variant runs (parallel streams of four or more,
// or prompts through the mat-vec), its own workgroup shape is chosen on the four-token step alone
// ("matvec few"), keeping the one-token choice's numerics (the integer path or not) and reduction, so
// that a sequence's logits hardly depend on how many others share its step. (On lavapipe the one-token
// race chose 32 threads for 512-wide rows, whose four-token variant took 1.7 times as long as 8
// threads'.) The two-token variant keeps its built-in shape.
func (b *backend) knobs(parallel int) []knob {
	d := b.d
	decode := []int{1}
	few := min(parallel, matvecFewMaxNT)
	if d.prefillMatVec {
		few = matvecFewMaxNT // the few-token variant evaluates every prompt there
	}
	steps := ""
	if few > 1 {
		decode = append(decode, few)
		steps = fmt.Sprintf(" (steps of 1 and %d tokens)", few) // parallel streams weigh in
	}
	knobs := []knob{{
		kind: "matvec", steps: steps, tokens: decode, rows: tuneRowsMax,
		variants: func(s matShape) ([]string, string) {
			var names []string
			for _, c := range matvecCandidates(d, s.wt) {
				names = append(names, c.String())
			}
			return names, matvecShapeFor(s.wt, s.k).String()
		},
		build: func(s matShape, w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error) {
			shape, _ := parseMatvecShape(s.wt, v)
			return d.newMatMulShape(w, x, k, y, rows, 0, matOptions{}, shape)
		},
		use: func(s matShape, v string) bool {
			shape, ok := parseMatvecShape(s.wt, v)
			if ok {
				d.tuned[s] = shape
				delete(d.tunedFew, s) // chosen for another one-token variant, if any: the next knob chooses again
			}
			return ok
		},
	}, {
		kind: "matmul", tokens: []int{b.batch}, rows: tuneTileRows,
		variants: func(s matShape) ([]string, string) {
			var names []string
			for _, c := range matmulTuned() {
				if c.check(d, s.wt) == nil {
					names = append(names, c.String())
				}
			}
			def, _ := matmulTileFor(d, s.wt)
			return names, def.String()
		},
		build: func(s matShape, w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error) {
			tile, _ := parseMatmulShape(v)
			return d.newMatMulShape(w, x, k, y, rows, 0, matOptions{tile: tile}, d.matvecShapeAt(s))
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
	if few == matvecFewMaxNT {
		knobs = slices.Insert(knobs, 1, b.fewKnob(few))
	}
	return knobs
}

// fewKnob chooses the workgroup shape of the largest few-token mat-vec variant (few tokens) on a step of
// few tokens, for the one-token variant chosen before it (tuned or built in): its variants are named as
// mat-vec shapes, with the one-token choice's integer path and reduction, which they keep.
func (b *backend) fewKnob(few int) knob {
	d := b.d
	one := func(s matShape) matvecShape {
		shape := d.matvecShapeAt(s)
		shape.few = fewShape{}
		return shape
	}
	name := func(s matShape, g fewShape) string {
		o := one(s)
		return matvecShape{wg: g.wg, rows: g.rows, tree: g.tree, int8: o.int8}.String()
	}
	// parse reads v back as a few-token shape of s, false when it is not one of s's candidates' forms or
	// does not keep the one-token choice's numerics and reduction.
	parse := func(s matShape, v string) (fewShape, bool) {
		shape, ok := parseMatvecShape(s.wt, v)
		g := fewShape{wg: shape.wg, rows: shape.rows, tree: shape.tree}
		o := one(s)
		return g, ok && shape.int8 == o.int8 && g.tree == o.tree && slices.Contains(fewCandidates(d, s.wt, g.tree), g)
	}
	return knob{
		kind: "matvec few", steps: fmt.Sprintf(" (steps of %d tokens)", few), tokens: []int{few}, rows: tuneRowsMax,
		variants: func(s matShape) ([]string, string) {
			o := one(s)
			var names []string
			for _, g := range fewCandidates(d, s.wt, o.tree) {
				names = append(names, name(s, g))
			}
			return names, name(s, d.fewShape(s.wt, few, o))
		},
		build: func(s matShape, w *weights, x, y bufRange, k, rows int, v string) (*matMulOp, error) {
			shape := one(s)
			var ok bool
			if shape.few, ok = parse(s, v); !ok {
				return nil, fmt.Errorf("few-token shape %q is not a candidate", v)
			}
			return d.newMatMulShape(w, x, k, y, rows, 0, matOptions{}, shape)
		},
		use: func(s matShape, v string) bool {
			g, ok := parse(s, v)
			if ok {
				d.tunedFew[s] = g
			}
			return ok
		},
	}
}

// race times every variant of kn on the first rows of t, on each of kn's steps, and returns the fastest
// (the least sum). Every variant is built first and then timed in quick succession, a round at a time,
// so that a slow spell of the machine (a shared one's neighbours, a software adapter's threads parked)
// falls on all of them rather than on whichever was timed then: two rounds of one submit each rank
// them (the better of the two counts), then the fastest few and the built-in choice are timed in
// tuneFinalRounds more rounds and their medians decide.
func (b *backend) race(kn knob, s matShape, t model.Tensor) (tuneEntry, error) {
	d := b.d
	p, err := b.uploadTuning(s, t, d.weightTex && kernelTypes[t.Type].own, slices.Max(kn.tokens), kn.rows)
	if err != nil {
		return tuneEntry{}, err
	}
	defer p.free(d)
	w, x, y, rows := p.w, p.x, p.y, p.rows
	type variant struct {
		name   string
		timers []*timer // one for each of kn's steps
		times  []float64
	}
	// measure times v once: one submit on each of kn's steps, summed.
	measure := func(v *variant) (float64, error) {
		var sum float64
		for _, tm := range v.timers {
			sec, err := tm.time()
			if err != nil {
				return 0, err
			}
			sum += sec
		}
		return sum, nil
	}
	names, def := kn.variants(s)
	var vs []*variant
	for _, name := range names {
		v := &variant{name: name}
		op, err := kn.build(s, w, whole(x), whole(y), s.k, rows, name)
		for i := 0; err == nil && i < len(kn.tokens); i++ {
			var tm *timer
			if tm, err = d.newTimer(op, kn.tokens[i]); err == nil {
				v.timers = append(v.timers, tm)
			}
		}
		if err == nil {
			vs = append(vs, v)
			continue
		}
		if d.Err() != nil {
			return tuneEntry{}, err // the device is gone: nothing more to time
		}
		b.log.Info("GPU tuning: variant skipped", "kernel", kn.kind, "shape", s.String(), "variant", name, "err", err)
	}
	if len(vs) == 0 {
		return tuneEntry{}, errors.New("no variant ran")
	}
	// rounds times each of vs n times, a round at a time.
	rounds := func(vs []*variant, n int) error {
		for range n {
			for _, v := range vs {
				sec, err := measure(v)
				if err != nil {
					return err
				}
				v.times = append(v.times, sec)
			}
		}
		return nil
	}
	if err := rounds(vs, 2); err != nil {
		return tuneEntry{}, err
	}
	slices.SortStableFunc(vs, func(a, b *variant) int { return cmp.Compare(slices.Min(a.times), slices.Min(b.times)) })
	var finals []*variant
	for i, v := range vs {
		if i < tuneFinalists || v.name == def {
			v.times = v.times[:0]
			finals = append(finals, v)
		}
	}
	if err := rounds(finals, tuneFinalRounds); err != nil {
		return tuneEntry{}, err
	}
	best := tuneEntry{Seconds: -1, Tried: len(vs)}
	for _, v := range finals {
		sec := medianOf(v.times)
		if v.name == def {
			best.Default = sec
		}
		if best.Seconds < 0 || sec < best.Seconds {
			best.Seconds, best.Variant = sec, v.name
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
// (the K-quants, which textures can hold) from storage buffers and from textures, the four products of a
// shape in turn for tuneFinalRounds rounds (as race does), and chooses textures when their median
// times, each relative to the buffers', multiply to less than one. Seconds and Default are the decode
// times per token over all those shapes, textures' and buffers'.
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
		// times[j][k]: buffers (j 0) or textures (j 1), decode (k 0) or prefill (k 1).
		times, texErr, err := b.timeStorage(shapes[i], tensors[i])
		if err != nil {
			return tuneEntry{}, err
		}
		if texErr != nil {
			b.log.Info("GPU tuning: variant skipped", "kernel", "weights", "shape", shapes[i].String(), "variant", storageTexture, "err", texErr)
			e.Tried, e.Seconds = 1, e.Default
			return e, nil
		}
		e.Default += times[0][0]
		e.Seconds += times[1][0]
		ratio *= times[1][0] / times[0][0] * times[1][1] / times[0][1]
	}
	if ratio < 1 {
		e.Variant = storageTexture
	} else {
		e.Seconds = e.Default
	}
	return e, nil
}

// timeStorage returns the median times of the built-in product of a decode token and of a prefill batch
// over the first rows of t (shape s), uploaded to buffers and to textures: [storage][decode, prefill].
// texErr says why the textures' products failed to build or run (the weights stay in buffers), err why the
// buffers' did or the device was lost.
func (b *backend) timeStorage(s matShape, t model.Tensor) (times [2][2]float64, texErr, err error) {
	d := b.d
	// fail sorts err: the textures' products' while the device lives, else the load's.
	fail := func(tex bool, err error) ([2][2]float64, error, error) {
		if tex && d.Err() == nil {
			return times, err, nil
		}
		return times, nil, err
	}
	var timers [2][2]*timer
	for j, tex := range []bool{false, true} {
		for k, T := range []int{1, b.batch} {
			rows := tuneRowsMax
			if k == 1 {
				rows = tuneTileRows
			}
			p, err := b.uploadTuning(s, t, tex, T, rows)
			if err != nil {
				return fail(tex, err)
			}
			defer p.free(d) // every product lives until the rounds are done
			op, err := d.newMatMulShape(p.w, whole(p.x), s.k, whole(p.y), p.rows, 0, matOptions{}, matvecShapeFor(s.wt, s.k))
			if err == nil {
				timers[j][k], err = d.newTimer(op, T)
			}
			if err != nil {
				return fail(tex, err)
			}
		}
	}
	var runs [2][2][]float64
	for range tuneFinalRounds {
		for j := range timers {
			for k, tm := range timers[j] {
				sec, err := tm.time()
				if err != nil {
					return fail(j == 1, err)
				}
				runs[j][k] = append(runs[j][k], sec)
			}
		}
	}
	for j := range runs {
		for k := range runs[j] {
			times[j][k] = medianOf(runs[j][k])
		}
	}
	return times, nil, nil
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

// tuneFinalists is how many of the fastest variants of the first rounds are timed again, and
// tuneFinalRounds how many times.
const (
	tuneFinalists   = 3
	tuneFinalRounds = 5
)

// timingSpan is the device time one timed submit aims for: long enough to see past a submit's fixed cost,
// short enough that a whole model tunes in seconds.
const timingSpan = 2 * time.Millisecond

// timer times op on steps of T tokens, per step, in submits of n steps that take about timingSpan.
type timer struct {
	d  *device
	op *matMulOp
	T  int
	n  int
}

// newTimer runs op once on a step of T tokens, which sizes the timer's submits (and takes a kernel's
// first use, which can be slower, out of the times).
func (d *device) newTimer(op *matMulOp, T int) (*timer, error) {
	t := &timer{d: d, op: op, T: T, n: 1}
	first, err := t.time()
	if err != nil {
		return nil, err
	}
	t.n = max(1, min(64, int(timingSpan.Seconds()/max(first, 1e-9))))
	return t, nil
}

// time returns the device time of a submit of t.n steps, per step. (It sets the step's token count
// first: timers of other counts take turns.)
func (t *timer) time() (float64, error) {
	if err := t.d.SetStep(t.T, 0); err != nil {
		return 0, err
	}
	e, err := t.d.NewEncoder("tuning")
	if err != nil {
		return 0, err
	}
	for range t.n {
		t.op.Record(e, t.T)
	}
	start := time.Now()
	if err := e.Submit(); err != nil {
		return 0, err
	}
	if err := t.d.Wait(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds() / float64(t.n), nil
}

// matvecCandidates are the workgroup shapes tuning tries for weight type wt: threads per workgroup and
// rows per workgroup (even, for RoPE pairs), each with the device's reduction and, where that is the
// subgroup one, also with the workgroup-memory tree; for the K-quants on a device with packed integer dot
// products, the integer path too (up to 16 rows). Shapes beyond the device's invocation or
// workgroup-memory limits are left out.
func matvecCandidates(d *device, wt string) []matvecShape {
	file := "matvec.wgsl"
	if ownKernels(wt) {
		file = "matvec_" + wt + ".wgsl"
	}
	wgs, rows := candidateGrid(wt)
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

// candidateGrid is the threads and rows per workgroup that tuning's mat-vec candidates combine, for
// weight type wt: the K-quants' own kernels take 64 elements of a row a thread, matvec.wgsl 4.
func candidateGrid(wt string) (wgs, rows []int) {
	if ownKernels(wt) {
		return []int{8, 16, 32, 64, 128}, []int{8, 16, 32}
	}
	return []int{64, 128, 256}, []int{2, 4, 8}
}

// fewCandidates are the few-token workgroup shapes tuning tries for weight type wt with the reduction
// tree says: the one-token candidates' threads with 8, 16 or 32 rows (the K-quants; 2, 4 or 8 for
// matvec.wgsl), those whose reduction fits the device's workgroup memory for the largest few-token
// variant. Unlike a one-token workgroup, one of a few tokens may have more rows than threads.
func fewCandidates(d *device, wt string, tree bool) []fewShape {
	wgs, rows := candidateGrid(wt)
	var out []fewShape
	for _, wg := range wgs {
		for _, r := range rows {
			if uint32(wg) <= d.limits.MaxComputeInvocationsPerWorkgroup && reduceBytes(r, matvecFewMaxNT, wg) <= d.limits.MaxComputeWorkgroupStorageSize {
				out = append(out, fewShape{wg: wg, rows: r, tree: tree})
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
