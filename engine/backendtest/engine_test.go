package backendtest

import (
	"testing"
	"time"
)

func TestDecodeSpan(t *testing.T) {
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, time.Unix(0, 0).Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, c := range []struct {
		name   string
		stamps [][]time.Time
		n      int
		d      time.Duration
	}{
		{"one stream: its tokens after the first", [][]time.Time{at(0, 10, 20, 30, 40)}, 4, 40 * time.Millisecond},
		// B's first token (1 ms) starts the span, A's last (30 ms) ends it; B's token of that last
		// step (31 ms) counts, A's of the first step (0 ms) does not.
		{"two streams a step apart by a millisecond", [][]time.Time{at(0, 10, 20, 30), at(1, 11, 21, 31)}, 6, 29 * time.Millisecond},
		{"a stream that joins late", [][]time.Time{at(0, 10, 20, 30, 40), at(20, 30, 40, 50)}, 4, 20 * time.Millisecond},
		{"a stream that ended before another began", [][]time.Time{at(0, 1), at(5, 6)}, 0, 0},
		{"a stream with no token", [][]time.Time{at(0, 10), nil}, 0, 0},
	} {
		n, d := decodeSpan(c.stamps)
		if n != c.n || d != c.d {
			t.Errorf("%s: %d tokens in %v, want %d in %v", c.name, n, d, c.n, c.d)
		}
	}
}
