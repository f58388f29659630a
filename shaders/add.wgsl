// add.wgsl: the residual connection, in place: a[i] += b[i] for the first S.n_tok * n elements.
//
// Bindings (group 0):
//   0 P  uniform  EltParams
//   1 S  uniform  Step
//   2 a  storage read_write  array<f32>  the residual stream
//   3 b  storage read        array<f32>  the sub-layer output
// Workgroup: 256 threads, one element each. Dispatch: grid (see common.wgsl) of ceil(T*n/256) workgroups.

//#include "common.wgsl"

struct EltParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: EltParams;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * GRID_X) * 256u + lid;
    if (i >= S.n_tok * P.n) {
        return;
    }
    a[i] += b[i];
}
