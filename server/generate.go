package server

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/gofiber/fiber/v2"

	"smolchat/engine"
)

// heartbeat is how often a stream waiting in the queue writes to its client, which is how a gone
// client is noticed (and its place in the queue given up).
const heartbeat = time.Second

// generate waits for the ticket's turn, runs one generation on the model and records its metrics. The
// ticket is released when it returns; progress gets the queue position while waiting.
func (s *Server) generate(ctx context.Context, t *ticket, progress func(pos int) error,
	run func(ctx context.Context, g Generator) (engine.Result, error)) (engine.Result, error) {
	defer t.release()
	if err := t.wait(ctx, heartbeat, progress); err != nil {
		return engine.Result{FinishReason: engine.FinishCancelled}, err
	}
	m := s.ready()
	if m == nil {
		return engine.Result{}, s.errLoading()
	}
	s.metrics.busy.Inc()
	defer s.metrics.busy.Dec()
	res, err := run(ctx, m.gen)
	if err == nil {
		s.metrics.observe(res.Timings)
	}
	return res, err
}

// generateWhole runs a generation whose answer is sent in one piece (a non-streamed API request). It is
// cancelled if the client closes its connection meanwhile (watchClose), and a cancelled result comes
// back as the cancellation's cause.
func (s *Server) generateWhole(c *fiber.Ctx, t *ticket, run func(ctx context.Context, g Generator) (engine.Result, error)) (engine.Result, error) {
	ctx, stop := watchClose(s.base, c.Context().Conn())
	res, err := s.generate(ctx, t, nil, run)
	stop()
	if err == nil && res.FinishReason == engine.FinishCancelled {
		err = context.Cause(ctx)
	}
	return res, err
}

// randomSeed is the seed of a request that names none, so that answers vary.
func randomSeed() uint64 { return rand.Uint64() }
