package server

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
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
	res, err := s.generateChoices(c, []*ticket{t}, func(ctx context.Context, g Generator, _ int) (engine.Result, error) {
		return run(ctx, g)
	})
	if err != nil {
		return engine.Result{}, err
	}
	return res[0], nil
}

// generateChoices runs the choices of a non-streamed API request side by side, choice i on tickets[i]
// (the engine batches them, and they share the prompt's KV blocks). The request fails when a choice
// fails, and is cancelled when the client closes its connection.
func (s *Server) generateChoices(c *fiber.Ctx, tickets []*ticket, run func(ctx context.Context, g Generator, i int) (engine.Result, error)) ([]engine.Result, error) {
	watch, stop := watchClose(s.base, c.Context().Conn())
	defer stop()
	ctx, cancel := context.WithCancelCause(watch)
	defer cancel(nil)
	results := make([]engine.Result, len(tickets))
	errs := make([]error, len(tickets))
	choice := func(i int) {
		results[i], errs[i] = s.generate(ctx, tickets[i], nil, func(ctx context.Context, g Generator) (engine.Result, error) {
			return run(ctx, g, i)
		})
		if errs[i] != nil {
			cancel(errs[i]) // the request fails: the other choices stop
		}
	}
	sideBySide(len(tickets), cancel, choice)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err // the first failure, or the client gone
	}
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		if results[i].FinishReason == engine.FinishCancelled {
			if err := context.Cause(ctx); err != nil {
				return nil, err
			}
			return nil, errors.New("the generation was cancelled")
		}
	}
	return results, nil
}

// sideBySide runs choice(0) here and choice(1..n-1) beside it, and returns when all have. A panic in one
// of them cancels the others and is raised here, where the server's recovery answers it.
func sideBySide(n int, cancel context.CancelCauseFunc, choice func(i int)) {
	var wg sync.WaitGroup
	panics := make([]any, n)
	for i := 1; i < n; i++ {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					panics[i] = p
					cancel(errors.New("a choice failed"))
				}
			}()
			choice(i)
		})
	}
	func() {
		defer wg.Wait()
		choice(0)
	}()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

// randomSeed is the seed of a request that names none, so that answers vary.
func randomSeed() uint64 { return rand.Uint64() }
