package server

import (
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"smolchat/engine"
)

// batcher is a Generator that runs several generations together and reports them (*engine.Engine
// does on a backend with sequences).
type batcher interface {
	SchedulerStats() (engine.SchedulerStats, bool)
}

// schedulerStats is what the model's scheduler runs now; false while the model loads or when it runs
// one generation at a time.
func (s *Server) schedulerStats() (engine.SchedulerStats, bool) {
	m := s.ready()
	if m == nil {
		return engine.SchedulerStats{}, false
	}
	b, ok := m.gen.(batcher)
	if !ok {
		return engine.SchedulerStats{}, false
	}
	return b.SchedulerStats()
}

// handleSlots shows what the model runs: the sequences generating together, the requests waiting in
// the engine, the KV blocks and the conversation cache.
func (s *Server) handleSlots(c *fiber.Ctx) error {
	st, ok := s.schedulerStats()
	if !ok {
		parallel := 0
		if m := s.ready(); m != nil {
			parallel = m.info().Parallel
		}
		return c.JSON(fiber.Map{"parallel": parallel, "batching": false})
	}
	slots := make([]fiber.Map, len(st.Slots))
	for i, sl := range st.Slots {
		slots[i] = fiber.Map{"prompt_tokens": sl.PromptTokens, "cached_tokens": sl.CachedTokens,
			"generated_tokens": sl.Generated, "prefilling": sl.Prefilling}
	}
	return c.JSON(fiber.Map{
		"parallel": st.Parallel, "batching": true, "running": st.Running, "waiting": st.Waiting, "slots": slots,
		"kv": fiber.Map{"block_positions": st.KV.BlockLen, "block_bytes": st.KV.BlockBytes, "blocks": st.KV.Blocks,
			"used": st.KV.Used, "cached": st.CachedBlocks, "free": st.KV.Blocks - st.KV.Used},
		"cache": fiber.Map{"conversations": st.CachedSeqs, "hit_tokens": st.CacheHitTokens, "evictions": st.Evictions, "disk_loads": st.DiskLoads},
	})
}

// schedulerMetrics are read from the scheduler at each scrape.
func (s *Server) schedulerMetrics() []prometheus.Collector {
	stat := func(f func(engine.SchedulerStats) float64) func() float64 {
		return func() float64 {
			st, ok := s.schedulerStats()
			if !ok {
				return 0
			}
			return f(st)
		}
	}
	kv := func(state string, f func(engine.SchedulerStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smolchat_kv_blocks", ConstLabels: prometheus.Labels{"state": state},
			Help: "KV cache blocks: used (by running or cached sequences), cached (held only by cached conversations), free (in the budget)."}, stat(f))
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smolchat_sequences_running", Help: "Sequences generating together in the batch."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.Running) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smolchat_sequences_waiting", Help: "Requests handed to the engine and waiting for a place in the batch."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.Waiting) })),
		kv("used", func(st engine.SchedulerStats) float64 { return float64(st.KV.Used) }),
		kv("cached", func(st engine.SchedulerStats) float64 { return float64(st.CachedBlocks) }),
		kv("free", func(st engine.SchedulerStats) float64 { return float64(st.KV.Blocks - st.KV.Used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smolchat_kv_cached_conversations", Help: "Finished conversations whose KV blocks are kept for reuse."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.CachedSeqs) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "smolchat_kv_cache_hit_tokens_total", Help: "Prompt tokens not evaluated because a cached or running sequence held them."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.CacheHitTokens) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "smolchat_kv_evictions_total", Help: "Cached conversations evicted to make room in the KV budget."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.Evictions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "smolchat_kv_disk_loads_total", Help: "Conversations read back from the KV disk cache (--kv-disk-max) instead of evaluated again."},
			stat(func(st engine.SchedulerStats) float64 { return float64(st.DiskLoads) })),
	}
}
