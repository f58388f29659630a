// kv_store.wgsl: writes a step's new keys and values into one layer's paged KV cache: row t's key and
// value go to cache row slots[t] (the block and offset of its sequence's position, attention_io.wgsl),
// for every row of the step, whatever sequence it belongs to. With KV_F16 the cache holds IEEE halves
// packed two per u32 (pack2x16float is core WGSL, so this needs no shader-f16); otherwise plain f32.
//
// Bindings (group 0):
//   0 P      uniform  KVParams
//   1 S      uniform  Step
//   2 k      storage read        array<f32>  new keys, row t at t*src_stride
//   3 v      storage read        array<f32>  new values, same layout
//   4 kc     storage read_write  key cache, cache row r at r*kv_dim elements
//   5 vc     storage read_write  value cache
//   6 slots  storage read        array<u32>  the cache row of each step row
// Workgroup: 64 threads, one element pair each. Dispatch: (ceil(kv_dim/2 / 64), T, 1). kv_dim is even.

//#include "common.wgsl"

struct KVParams {
    kv_dim: u32,
    src_stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: KVParams;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
//#if KV_F16
@group(0) @binding(4) var<storage, read_write> kc: array<u32>;
@group(0) @binding(5) var<storage, read_write> vc: array<u32>;
//#else
@group(0) @binding(4) var<storage, read_write> kc: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> vc: array<vec2<f32>>;
//#endif
@group(0) @binding(6) var<storage, read> slots: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let t = gid.y;
    if (i >= P.kv_dim / 2u || t >= S.n_tok) {
        return;
    }
    let src = t * P.src_stride + 2u * i;
    let dst = slots[t] * (P.kv_dim / 2u) + i;
    let kk = vec2<f32>(k[src], k[src + 1u]);
    let vv = vec2<f32>(v[src], v[src + 1u]);
//#if KV_F16
    kc[dst] = pack2x16float(kk);
    vc[dst] = pack2x16float(vv);
//#else
    kc[dst] = kk;
    vc[dst] = vv;
//#endif
}
