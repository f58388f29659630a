package model

import "testing"

// TestConfigCheck: a hand-built config the backends cannot run is refused, whichever field is off.
func TestConfigCheck(t *testing.T) {
	good := Config{Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, RopeDim: 8, NoRope: []bool{false, true}}
	if err := good.Check(); err != nil {
		t.Fatalf("a consistent config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
	}{
		{"no heads", func(c *Config) { c.Heads = 0 }},
		{"no kv heads", func(c *Config) { c.KVHeads = 0 }},
		{"heads not a multiple of kv heads", func(c *Config) { c.KVHeads = 3 }},
		{"rope wider than a head", func(c *Config) { c.RopeDim = 10 }},
		{"odd rope width", func(c *Config) { c.RopeDim = 5 }},
		{"a NoRope flag missing", func(c *Config) { c.NoRope = c.NoRope[:1] }},
	} {
		c := good
		c.NoRope = append([]bool(nil), good.NoRope...)
		tc.edit(&c)
		if err := c.Check(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
