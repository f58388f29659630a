package gpu

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/engine"
	"smolchat/engine/backendtest"
)

// TestKVBudget sizes the pool on a device whose bindings hold 10 blocks of a layer's keys: a default
// budget is capped to them, a larger given one refused with the most it may be, one below the context
// refused.
func TestKVBudget(t *testing.T) {
	const layerBytes, blockBytes = 1 << 20, 8 << 20 // four layers' keys and values a block
	d := &device{limits: wgpu.Limits{MaxStorageBufferBindingSize: 10 * layerBytes, MaxBufferSize: 12 * layerBytes}}
	for _, c := range []struct {
		name     string
		budget   int64
		ctx      int
		blocks   int
		errorHas string
	}{
		{"default, capped by the binding", 0, 4 * kvBlockLen, 10, ""},
		{"given", 6 * blockBytes, 4 * kvBlockLen, 6, ""},
		{"given, a part block dropped", 6*blockBytes + 5, kvBlockLen, 6, ""},
		{"past the binding", 11 * blockBytes, kvBlockLen, 0, "--kv-memory 83886080 or less"},
		{"below the context", 3 * blockBytes, 4 * kvBlockLen, 0, "does not hold the context"},
		{"default below the context", 0, 11 * kvBlockLen, 0, "exceed the device's limit"},
	} {
		blocks, err := d.kvBudget(c.budget, c.ctx, 4, blockBytes, layerBytes)
		switch {
		case c.errorHas == "" && (err != nil || blocks != c.blocks):
			t.Errorf("%s: %d blocks, %v; want %d", c.name, blocks, err, c.blocks)
		case c.errorHas != "" && (err == nil || !strings.Contains(err.Error(), c.errorHas)):
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.errorHas)
		}
	}
}

// TestKVGrowth fills the one block a 256-position context starts with, then makes a second sequence:
// the cache buffers grow (the first sequence's block copied into the larger ones, the layers' attention
// rebound), and the first sequence goes on with the logits of an unshared run.
func TestKVGrowth(t *testing.T) {
	m := synthModel(t)
	b := openTestBackend(t, m, options{Context: kvBlockLen, KV: "f32"})
	if b.kvCap != 1 {
		t.Fatalf("a context of one block starts with %d blocks, want 1", b.kvCap)
	}
	ctx := context.Background()
	prompt := backendtest.SeqTokens(m.Config.Vocab, 100, 1)
	want := backendtest.SeqTokens(m.Config.Vocab, 1, 2)
	solo, err := b.Forward(ctx, append(prompt, want...), []int{len(prompt)})
	if err != nil {
		t.Fatal(err)
	}
	b.Truncate(0)
	a, other := b.NewSeq(), b.NewSeq()
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: a, Tokens: prompt}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: other, Tokens: backendtest.SeqTokens(m.Config.Vocab, 50, 3)}}); err != nil {
		t.Fatal(err)
	}
	if b.kvCap < 2 {
		t.Fatalf("two sequences of a block each: %d blocks in the buffers", b.kvCap)
	}
	got, err := b.ForwardSeqs(ctx, []engine.SeqEntry{{Seq: a, Tokens: want, Want: []int{0}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got[0][0], solo[0]); e > 1e-4 {
		t.Errorf("after the cache grew, the first sequence's logits differ from an unshared run by %.3g", e)
	}
	// A budget past the device's binding limit is refused by name.
	big := int64(b.d.limits.MaxStorageBufferBindingSize/b.kvLayerBytes()+1) * int64(b.kvBlockBytes())
	_, err = newBackend(m, options{deviceOptions: deviceOptions{Force: true}, Context: kvBlockLen, KV: "f32", KVMemory: big})
	if err == nil || errors.Is(err, engine.ErrKVFull) || !strings.Contains(err.Error(), "--kv-memory") {
		t.Errorf("a budget past the binding limit: err = %v, want a refusal naming --kv-memory", err)
	}
}
