package cpu

import (
	"encoding/binary"

	"smolchat/model/quant"
)

// kvPageBits sets the KV cache's page size: 1<<kvPageBits positions per allocation.
const kvPageBits = 8

const kvPage = 1 << kvPageBits

// kvCache holds every layer's keys and values as IEEE half floats, as llama.cpp's default cache does:
// half the memory and bandwidth of float32, and the same rounding as the reference. Memory comes in pages
// of kvPage positions, allocated as the sequence grows, so it follows use rather than the maximum context.
//
// Keys and values are both stored a row per position ([pos][kvDim]): a query·key product is one
// contiguous dot product, and attention adds each position's value row to its accumulators in turn.
type kvCache struct {
	kvDim int
	keys  [][][]byte // [layer][page] → kvPage × kvDim halves
	vals  [][][]byte // [layer][page] → kvPage × kvDim halves
}

func newKVCache(layers, kvDim int) kvCache {
	return kvCache{kvDim: kvDim, keys: make([][][]byte, layers), vals: make([][][]byte, layers)}
}

// grow makes room for positions 0..n-1.
func (c *kvCache) grow(n int) {
	pages := (n + kvPage - 1) >> kvPageBits
	for l := range c.keys {
		for len(c.keys[l]) < pages {
			c.keys[l] = append(c.keys[l], make([]byte, 2*kvPage*c.kvDim))
			c.vals[l] = append(c.vals[l], make([]byte, 2*kvPage*c.kvDim))
		}
	}
}

// store writes layer l's key and value rows (kvDim floats each) for position pos, rounding them to half.
func (c *kvCache) store(l, pos int, k, v []float32) {
	kr := c.keyRow(l, pos)
	for i, x := range k[:c.kvDim] {
		binary.LittleEndian.PutUint16(kr[2*i:], quant.F32ToF16(x))
	}
	vr := c.valueRow(l, pos)
	for i, x := range v[:c.kvDim] {
		binary.LittleEndian.PutUint16(vr[2*i:], quant.F32ToF16(x))
	}
}

// keyRow is layer l's key row at pos: kvDim halves.
func (c *kvCache) keyRow(l, pos int) []byte { return c.row(c.keys[l], pos) }

// valueRow is layer l's value row at pos: kvDim halves.
func (c *kvCache) valueRow(l, pos int) []byte { return c.row(c.vals[l], pos) }

// row is the row at pos of one layer's pages of keys or values.
func (c *kvCache) row(pages [][]byte, pos int) []byte {
	i := 2 * (pos & (kvPage - 1)) * c.kvDim
	return pages[pos>>kvPageBits][i : i+2*c.kvDim]
}

// keyRows and valueRows are layer l's key or value rows for the positions of page: kvPage rows of
// kvDim halves.
func (c *kvCache) keyRows(l, page int) []byte   { return c.keys[l][page] }
func (c *kvCache) valueRows(l, page int) []byte { return c.vals[l][page] }
