package kvblock

import (
	"slices"
	"testing"
)

// TestPool follows a pool of 4-position blocks through growth, a fork inside a block, copy on write,
// truncation and release: the blocks each sequence holds, the copies asked for, and the counts.
func TestPool(t *testing.T) {
	p := New(2, 5) // blocks of 4 positions, at most 5
	var copies [][2]int32
	copyBlock := func(dst, src int32) { copies = append(copies, [2]int32{dst, src}) }
	a := &Seq{}
	grow := func(s *Seq, n int) {
		t.Helper()
		if c := p.GrowCost(s, n); c > p.Available() {
			t.Fatalf("growing by %d costs %d blocks, %d available", n, c, p.Available())
		}
		p.Grow(s, n, copyBlock)
		s.N += n
	}
	grow(a, 6) // blocks 0, 1; block 1 half filled
	b := p.Fork(a, 5)
	for _, c := range []struct {
		name              string
		s                 *Seq
		blocks            []int32
		used, avail, only int
	}{
		{"a after 6", a, []int32{0, 1}, 2, 3, 0},
		{"fork at 5", b, []int32{0, 1}, 2, 3, 0},
	} {
		if !slices.Equal(c.s.Blocks, c.blocks) || p.Used() != c.used || p.Available() != c.avail || p.OnlyIn([]*Seq{c.s}) != c.only {
			t.Errorf("%s: blocks %v, used %d, available %d, only in it %d; want %v, %d, %d, %d",
				c.name, c.s.Blocks, p.Used(), p.Available(), p.OnlyIn([]*Seq{c.s}), c.blocks, c.used, c.avail, c.only)
		}
	}
	// b writes position 5 into the shared block 1: a copy (block 2), then a new block for 8..9.
	if got := p.GrowCost(b, 5); got != 2 {
		t.Errorf("GrowCost of the fork by 5 = %d, want 2 (a copy and a new block)", got)
	}
	grow(b, 5)
	if !slices.Equal(b.Blocks, []int32{0, 2, 3}) || !slices.Equal(copies, [][2]int32{{2, 1}}) {
		t.Errorf("after the fork wrote: blocks %v, copies %v; want [0 2 3], [[2 1]]", b.Blocks, copies)
	}
	if p.OnlyIn([]*Seq{b}) != 2 || p.OnlyIn([]*Seq{a, b}) != 4 || p.Used() != 4 {
		t.Errorf("only in b %d (want 2), in a and b %d (want 4), used %d (want 4)", p.OnlyIn([]*Seq{b}), p.OnlyIn([]*Seq{a, b}), p.Used())
	}
	// a writes into block 1, now its own: no copy.
	if got := p.GrowCost(a, 2); got != 0 {
		t.Errorf("GrowCost of a by 2 = %d, want 0", got)
	}
	p.Truncate(b, 100) // past the end: unchanged
	if b.N != 10 || len(b.Blocks) != 3 {
		t.Errorf("Truncate past the end: N %d, %d blocks", b.N, len(b.Blocks))
	}
	p.Truncate(b, 4)
	if b.N != 4 || !slices.Equal(b.Blocks, []int32{0}) || p.Used() != 2 {
		t.Errorf("Truncate(4): N %d, blocks %v, used %d; want 4, [0], 2", b.N, b.Blocks, p.Used())
	}
	p.Truncate(a, -1)
	p.Truncate(b, 0)
	if p.Used() != 0 || p.Available() != 5 || p.Allocated() != 4 {
		t.Errorf("all released: used %d, available %d, allocated %d; want 0, 5, 4", p.Used(), p.Available(), p.Allocated())
	}
}
