package tokenizer

import (
	"strings"
	"sync"
)

// wordCache remembers the tokens of recently seen words. Text repeats its words, and merging a word costs
// far more than a map lookup. It is bounded: when full it is simply emptied.
type wordCache struct {
	mu sync.Mutex
	m  map[string][]int32
}

const (
	maxCachedWord = 64      // bytes; longer words are rare and seldom repeat
	maxCacheSize  = 1 << 16 // entries
)

func (c *wordCache) get(word string) ([]int32, bool) {
	c.mu.Lock()
	toks, ok := c.m[word]
	c.mu.Unlock()
	return toks, ok
}

func (c *wordCache) put(word string, toks []int32) {
	toks = append([]int32(nil), toks...)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCacheSize {
		c.m = make(map[string][]int32)
	}
	c.m[strings.Clone(word)] = toks // clone: word points into the caller's text
	c.mu.Unlock()
}

func (c *wordCache) reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
