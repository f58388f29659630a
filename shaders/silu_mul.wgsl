// silu_mul.wgsl: the SwiGLU gate, in place: g[i] = silu(g[i]) * u[i] = g/(1+exp(-g)) * u, for the first
// S.n_tok * n elements (tokens are contiguous rows of n).
//
// Bindings (group 0):
//   0 P  uniform  EltParams
//   1 S  uniform  Step
//   2 g  storage read_write  array<f32>  gate projections, overwritten with the product
//   3 u  storage read        array<f32>  up projections
// Workgroup: 256 threads, one element each. Dispatch: grid (see common.wgsl) of ceil(T*n/256) workgroups.

//#include "common.wgsl"

struct EltParams {
    n: u32,    // elements per token
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: EltParams;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<storage, read> u: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * GRID_X) * 256u + lid;
    if (i >= S.n_tok * P.n) {
        return;
    }
    let a = g[i];
    g[i] = a / (1.0 + exp(-a)) * u[i];
}
