package gpu

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestProfile runs the profiler on stories260K, with timestamp queries where the device has them and
// with isolated submits: every step of the forward pass is timed once, with a positive time in both
// phases, and each phase's shares sum to 1.
func TestProfile(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	b := openTestBackend(t, m, options{Batch: 8})
	type profCase struct {
		name string
		opts ProfileOptions
	}
	cases := []profCase{
		{"isolated/depth0", ProfileOptions{Reps: 1, Isolated: true}},
		{"isolated/depth5/prefill3", ProfileOptions{Depth: 5, Prefill: 3, Reps: 2, Isolated: true}},
		{"isolated/depth5/seqs3", ProfileOptions{Depth: 5, Seqs: 3, Reps: 1, Isolated: true}},
	}
	if b.d.timestamps {
		cases = append(cases,
			profCase{"timestamps/depth0", ProfileOptions{Reps: 1}},
			profCase{"timestamps/depth70/prefill3", ProfileOptions{Depth: 70, Prefill: 3, Reps: 3}},
			profCase{"timestamps/depth70/seqs4", ProfileOptions{Depth: 70, Seqs: 4, Reps: 1}})
	} else {
		t.Log("the device has no timestamp-query: only isolated submits are tested")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := b.Profile(context.Background(), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if stamped := strings.HasPrefix(p.Method, "timestamp"); stamped == c.opts.Isolated {
				t.Errorf("method %q for Isolated=%v", p.Method, c.opts.Isolated)
			}
			if want := max(c.opts.Seqs, 1); p.DecodeSeqs != want {
				t.Errorf("DecodeSeqs = %d, want %d", p.DecodeSeqs, want)
			}
			steps := b.profileSteps(&headOp{m: b.lmHead})
			want := map[string]int{}
			for _, s := range steps {
				want[s.Name]++
			}
			got := map[string]int{}
			var decodeShare, prefillShare float64
			for _, r := range p.Rows {
				got[r.Step] += r.Count
				if r.Decode.Seconds <= 0 || r.Prefill.Seconds <= 0 || r.KernelDecode == "" || r.KernelPrefill == "" {
					t.Errorf("row %+v: want positive times and kernel names in both phases", r)
				}
				decodeShare += r.Decode.Share
				prefillShare += r.Prefill.Share
			}
			for name, n := range want {
				if got[name] != n {
					t.Errorf("step %q timed %d times, want %d (once per instance)", name, got[name], n)
				}
			}
			if len(got) != len(want) {
				t.Errorf("profile has steps %v, want %v", got, want)
			}
			if math.Abs(decodeShare-1) > 1e-9 || math.Abs(prefillShare-1) > 1e-9 {
				t.Errorf("shares sum to %g (decode) and %g (prefill), want 1", decodeShare, prefillShare)
			}
			if b.Len() != c.opts.Depth {
				t.Errorf("Len() = %d after profiling at depth %d", b.Len(), c.opts.Depth)
			}
		})
	}
	// The backend still computes: the profile's writes land beyond the cached positions.
	b.Truncate(0)
	if got := greedyIDs(t, b, storiesPrompt, 8); !slices.Equal(got, storiesGreedy[:8]) {
		t.Errorf("greedy ids after profiling %v, want %v", got, storiesGreedy[:8])
	}
	if _, err := b.Profile(context.Background(), ProfileOptions{Prefill: 9}); err == nil {
		t.Error("a prefill step over the batch was accepted")
	}
	if _, err := b.Profile(context.Background(), ProfileOptions{Seqs: b.maxSeqs + 1}); err == nil {
		t.Errorf("a decode step of %d sequences was accepted (the backend holds %d)", b.maxSeqs+1, b.maxSeqs)
	}
}
