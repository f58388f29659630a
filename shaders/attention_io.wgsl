// attention_io.wgsl: what the attention kernels share (attention.wgsl for prefill, attention_decode.wgsl
// and attention_combine.wgsl for decode): the parameters, the query, cache and sequence bindings, and the cache reads. Each kernel
// declares its outputs itself.
//
// The KV cache is paged: the caches of a layer hold blocks of BL positions (a define), and a sequence's
// position j lives in cache row tables[table + j / BL] * BL + j % BL (cache_row), where table is where
// the sequence's block table starts. A submit's rows belong to one or more sequences, each a Seg: rows
// row0 .. row0 + n_tok - 1 of q and out, at the sequence's positions pos0 .. pos0 + n_tok - 1. The kernels
// take a Seg each in workgroup_id.z. KV_ACCESS is read, or read_write for the decode pass that stores
// its rows itself.
//
// Bindings (group 0):
//   0 P       uniform  AttnParams (below)
//   2 q       storage read  array<f32>  queries, row t head h at t*q_stride + h*HD
//   3 kc      storage KV_ACCESS  key cache, cache row r kv head g at r*kv_dim + g*HD (f32, or packed f16 with KV_F16)
//   4 vc      storage KV_ACCESS  value cache, same layout
//   6 segs    storage read  array<Seg>  the sequences this dispatch attends for
//   7 tables  storage read  array<u32>  the sequences' block tables, one after another

struct AttnParams {
    n_heads: u32,
    n_kv_heads: u32,
    q_stride: u32,
    kv_dim: u32,
    out_stride: u32,
    scale: f32,
    max_chunks: u32, // attention_decode.wgsl: chunks of partials per sequence
    new_stride: u32, // attention_decode.wgsl: floats per row of the step's new keys and values
}

struct Seg {
    row0: u32,  // first row of q and out
    n_tok: u32, // rows
    pos0: u32,  // the sequence's position of row row0
    table: u32, // index in tables of the sequence's first block
}

const BL = {{BL}}u; // positions per cache block

@group(0) @binding(0) var<uniform> P: AttnParams;
@group(0) @binding(2) var<storage, read> q: array<f32>;
//#if KV_F16
@group(0) @binding(3) var<storage, {{KV_ACCESS}}> kc: array<u32>;
@group(0) @binding(4) var<storage, {{KV_ACCESS}}> vc: array<u32>;
//#else
@group(0) @binding(3) var<storage, {{KV_ACCESS}}> kc: array<vec2<f32>>;
@group(0) @binding(4) var<storage, {{KV_ACCESS}}> vc: array<vec2<f32>>;
//#endif
@group(0) @binding(6) var<storage, read> segs: array<Seg>;
@group(0) @binding(7) var<storage, read> tables: array<u32>;

// cache_row is the cache row of position j of the sequence whose block table starts at table.
fn cache_row(table: u32, j: u32) -> u32 {
    return tables[table + j / BL] * BL + j % BL;
}

// kpair and vpair read the element pair at pair index i of a cache.
fn kpair(i: u32) -> vec2<f32> {
//#if KV_F16
    return unpack2x16float(kc[i]);
//#else
    return kc[i];
//#endif
}

fn vpair(i: u32) -> vec2<f32> {
//#if KV_F16
    return unpack2x16float(vc[i]);
//#else
    return vc[i];
//#endif
}
