// attention_io.wgsl: what the attention kernels share (attention.wgsl for prefill, attention_decode.wgsl
// for decode): the parameters, the query and cache bindings, and the cache reads. Each kernel declares
// its outputs itself.
//
// Bindings (group 0):
//   0 P   uniform  AttnParams (below)
//   2 q   storage read  array<f32>  queries, token t head h at t*q_stride + h*HD
//   3 kc  storage KV_ACCESS  key cache, row p kv head g at p*kv_dim + g*HD (f32, or packed f16 with KV_F16)
//   4 vc  storage KV_ACCESS  value cache, same layout
// KV_ACCESS is read, or read_write for a kernel that also stores the new token's row (attention_decode.wgsl).

struct AttnParams {
    n_heads: u32,
    n_kv_heads: u32,
    q_stride: u32,
    kv_dim: u32,
    out_stride: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: AttnParams;
@group(0) @binding(2) var<storage, read> q: array<f32>;
//#if KV_F16
@group(0) @binding(3) var<storage, {{KV_ACCESS}}> kc: array<u32>;
@group(0) @binding(4) var<storage, {{KV_ACCESS}}> vc: array<u32>;
//#else
@group(0) @binding(3) var<storage, {{KV_ACCESS}}> kc: array<vec2<f32>>;
@group(0) @binding(4) var<storage, {{KV_ACCESS}}> vc: array<vec2<f32>>;
//#endif

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
