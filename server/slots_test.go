package server

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"smolchat/engine"
)

// batchingFake is the test double with a scheduler's report, as the engine has on the CPU backend.
type batchingFake struct {
	*fakeGen
	stats engine.SchedulerStats
}

func (b batchingFake) SchedulerStats() (engine.SchedulerStats, bool) { return b.stats, true }

// TestSlotsAndSchedulerMetrics checks that /slots and /metrics show the scheduler's report: running
// and waiting sequences, KV blocks used, cached and free, cache hits and evictions.
func TestSlotsAndSchedulerMetrics(t *testing.T) {
	st := engine.SchedulerStats{Parallel: 4, Running: 2, Waiting: 1, CachedSeqs: 3, CachedBlocks: 5, CacheHitTokens: 1234, Evictions: 7, DiskLoads: 2,
		KV:    engine.KVUsage{BlockLen: 256, BlockBytes: 1 << 20, Blocks: 40, Used: 12},
		Slots: []engine.SlotInfo{{PromptTokens: 100, CachedTokens: 60, Generated: 9}, {PromptTokens: 3000, Prefilling: true}}}
	_, base := startServer(t, batchingFake{newFake(), st}, Config{})

	resp := get(t, base+"/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`smolchat_sequences_running 2`,
		`smolchat_sequences_waiting 1`,
		`smolchat_kv_blocks{state="used"} 12`,
		`smolchat_kv_blocks{state="cached"} 5`,
		`smolchat_kv_blocks{state="free"} 28`,
		`smolchat_kv_cached_conversations 3`,
		`smolchat_kv_cache_hit_tokens_total 1234`,
		`smolchat_kv_evictions_total 7`,
		`smolchat_kv_disk_loads_total 2`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	var slots struct {
		Parallel, Running, Waiting int
		Batching                   bool
		Slots                      []struct {
			PromptTokens int  `json:"prompt_tokens"`
			CachedTokens int  `json:"cached_tokens"`
			Generated    int  `json:"generated_tokens"`
			Prefilling   bool `json:"prefilling"`
		}
		KV struct {
			Used, Cached, Free, Blocks int
		}
		Cache struct {
			Conversations int
			HitTokens     int `json:"hit_tokens"`
			DiskLoads     int `json:"disk_loads"`
		}
	}
	resp = get(t, base+"/slots")
	if err := json.NewDecoder(resp.Body).Decode(&slots); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !slots.Batching || slots.Parallel != 4 || slots.Running != 2 || slots.Waiting != 1 || len(slots.Slots) != 2 ||
		slots.Slots[0].CachedTokens != 60 || !slots.Slots[1].Prefilling || slots.KV.Free != 28 || slots.Cache.HitTokens != 1234 ||
		slots.Cache.DiskLoads != 2 {
		t.Errorf("/slots = %+v", slots)
	}

	// A generator without a scheduler (the GPU backend's engine, the plain test double).
	_, plain := startServer(t, newFake(), Config{})
	resp = get(t, plain+"/slots")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`"batching":false`)) {
		t.Errorf("/slots without a scheduler = %s", b)
	}
}
