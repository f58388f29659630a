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
// Keys are stored a row per position ([pos][kvDim]), so a query·key product is one contiguous dot
// product. Values are stored transposed within a page ([kvDim][kvPage]), so each output element of
// Σ_p weight_p·v_p is also one contiguous dot product, over the positions of the page.
type kvCache struct {
	kvDim int
	keys  [][][]byte // [layer][page] → kvPage × kvDim halves
	vals  [][][]byte // [layer][page] → kvDim × kvPage halves
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
	page, off := c.vals[l][pos>>kvPageBits], pos&(kvPage-1)
	for i, x := range v[:c.kvDim] {
		binary.LittleEndian.PutUint16(page[2*(i*kvPage+off):], quant.F32ToF16(x))
	}
}

// keyRow is layer l's key row at pos: kvDim halves.
func (c *kvCache) keyRow(l, pos int) []byte {
	i := 2 * (pos & (kvPage - 1)) * c.kvDim
	return c.keys[l][pos>>kvPageBits][i : i+2*c.kvDim]
}

// keyRows is layer l's key rows for the positions of page: kvPage rows of kvDim halves.
func (c *kvCache) keyRows(l, page int) []byte { return c.keys[l][page] }

// valueRows is layer l's values for the positions of page, transposed: kvDim runs of kvPage halves.
func (c *kvCache) valueRows(l, page int) []byte { return c.vals[l][page] }
