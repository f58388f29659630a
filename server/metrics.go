package server

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"smolchat/engine"
)

// metrics are the server's Prometheus metrics, in a registry of its own so that servers (in tests) do
// not share counters.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	queueDepth   prometheus.Gauge
	busy         prometheus.Gauge
	ttft         prometheus.Histogram
	promptTPS    prometheus.Gauge
	genTPS       prometheus.Gauge
	promptTokens prometheus.Counter
	genTokens    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smolchat_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"endpoint", "status"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smolchat_queue_depth", Help: "Requests waiting for the model.",
		}),
		busy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smolchat_generation_active", Help: "Generations running (up to the engine's parallel sequences).",
		}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smolchat_time_to_first_token_seconds",
			Help:    "Time from the start of a generation (after queueing) to its first token.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60},
		}),
		promptTPS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smolchat_prompt_tokens_per_second", Help: "Prompt processing speed of the last generation (uncached tokens).",
		}),
		genTPS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smolchat_generation_tokens_per_second", Help: "Decoding speed of the last generation.",
		}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smolchat_prompt_tokens_total", Help: "Prompt tokens evaluated (not counting cached ones).",
		}),
		genTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smolchat_generated_tokens_total", Help: "Tokens generated.",
		}),
	}
	m.reg.MustRegister(m.requests, m.queueDepth, m.busy, m.ttft, m.promptTPS, m.genTPS, m.promptTokens, m.genTokens,
		collectors.NewGoCollector())
	return m
}

// observe records a finished generation.
func (m *metrics) observe(t engine.Timings) {
	if t.GeneratedTokens > 0 {
		m.ttft.Observe(t.TimeToFirstToken.Seconds())
	}
	if t.PromptTPS > 0 {
		m.promptTPS.Set(t.PromptTPS)
	}
	if t.GenTPS > 0 {
		m.genTPS.Set(t.GenTPS)
	}
	m.promptTokens.Add(float64(t.PromptTokens - t.CachedTokens))
	m.genTokens.Add(float64(t.GeneratedTokens))
}

func (s *Server) handleMetrics() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
}

// countRequests counts every request by its route pattern (not its path, which would make a label value
// per conversation) and final status.
func (s *Server) countRequests(c *fiber.Ctx) error {
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; count the status it will send.
		status = errorStatus(err)
	}
	endpoint := "other"
	if r := c.Route(); r != nil && r.Method != "USE" {
		endpoint = r.Path
	}
	s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	return err
}
