package gpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"smolchat/model/quant"
)

var (
	testDevOnce sync.Once
	testDev     *device
	testDevErr  error
)

// testDevice returns the shared test testDevice (any adapter, CPU-type ones included, so lavapipe serves CI),
// skipping the test when the machine has none.
func testDevice(t testing.TB) *device {
	t.Helper()
	testDevOnce.Do(func() {
		testDev, testDevErr = openDevice(deviceOptions{Force: true})
	})
	if errors.Is(testDevErr, errNoAdapter) {
		t.Skipf("no WebGPU adapter: install mesa-vulkan-drivers (%v)", testDevErr)
	}
	if testDevErr != nil {
		t.Fatal(testDevErr)
	}
	if err := testDev.Err(); err != nil {
		t.Fatalf("shared test device is unusable: %v", err)
	}
	return testDev
}

// reduction is a way the mat-vecs' threads add their partial sums (reduce.wgsl).
type reduction string

const (
	reduceShuffles    reduction = "shuffles"    // subgroup shuffles (SG8): CPU adapters with subgroups of 8
	reduceSubgroupAdd reduction = "subgroupAdd" // a subgroupAdd per sum
	reduceTree        reduction = "tree"        // workgroup memory only
)

// reductionModes lists the reductions the device can run, its default first.
func reductionModes(d *device) []reduction {
	var modes []reduction
	if d.sg8 {
		modes = append(modes, reduceShuffles)
	}
	if d.subgroupsAvail() {
		modes = append(modes, reduceSubgroupAdd)
	}
	return append(modes, reduceTree)
}

// useReduction switches the device's kernels to reduction m for one test.
func useReduction(t *testing.T, d *device, m reduction) {
	sg, sh := d.subgroups, d.shuffle8
	d.subgroups, d.shuffle8 = m != reduceTree, m == reduceShuffles
	t.Cleanup(func() { d.subgroups, d.shuffle8 = sg, sh })
}

// limitBinding caps storage bindings for one test so that tensors split into several chunks.
func limitBinding(t *testing.T, d *device, n uint64) {
	old := d.maxBinding
	d.maxBinding = n
	t.Cleanup(func() { d.maxBinding = old })
}

func randF32(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * scale
	}
	return v
}

// quantized encodes m rows of k random values as type t and returns the raw bytes and their exact
// dequantized values, which the kernels must reproduce.
func quantized(t testing.TB, r *rand.Rand, typ quant.Type, m, k int) ([]byte, []float32) {
	t.Helper()
	rb, err := typ.RowBytes(k)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, m*rb)
	deq := make([]float32, m*k)
	for row := range m {
		src := randF32(r, k, 1)
		if err := quant.QuantizeRow(typ, src, raw[row*rb:(row+1)*rb]); err != nil {
			t.Fatal(err)
		}
		if err := quant.DequantizeRow(typ, raw[row*rb:(row+1)*rb], deq[row*k:(row+1)*k]); err != nil {
			t.Fatal(err)
		}
	}
	return raw, deq
}

// relErr is max |got - want| over max |want|: the error relative to the output's scale.
func relErr(got, want []float32) float64 {
	var worst, scale float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
	}
	if scale == 0 {
		return worst
	}
	return worst / scale
}

func mustF32(t *testing.T, d *device, b *buffer, off, n int) []float32 {
	t.Helper()
	v, err := d.ReadF32(b, off, n)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// run records fn for T tokens at position pos0, submits and waits.
func run(t *testing.T, d *device, T, pos0 int, fn func(e *encoder)) {
	t.Helper()
	if err := d.SetStep(T, pos0); err != nil {
		t.Fatal(err)
	}
	e, err := d.NewEncoder(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	fn(e)
	if err := e.Submit(); err != nil {
		t.Fatal(err)
	}
}
