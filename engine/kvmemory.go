package engine

// DefaultParallel is how many sequences generate together when --parallel is not given.
const DefaultParallel = 4

// DefaultKVMemory is the KV budget, in bytes, when --kv-memory is not given, for a model whose cache
// takes perPosition bytes a position in blocks of blockLen positions: room for parallel running
// sequences of a full context plus one context's worth of cached conversations, each with one block
// more than its context needs (a sequence that starts from a shared, partly filled block copies it
// before writing; without that block, sequences forked from one cached prompt could run out
// mid-answer), but at most a quarter of the machine's memory (when known), and never less than one
// context. Blocks are allocated as they are used, so a large budget costs nothing until conversations
// fill it.
func DefaultKVMemory(perPosition int64, context, parallel, blockLen int) int64 {
	blockLen = max(blockLen, 1)
	one := perPosition * int64((context+blockLen-1)/blockLen+1) * int64(blockLen)
	b := one * int64(max(parallel, 1)+1)
	if mem := physicalMemory(); mem > 0 {
		b = min(b, int64(mem/4))
	}
	return max(b, one)
}
