// rmsnorm.wgsl: y[t] = x[t] * 1/sqrt(mean(x[t]^2) + eps) * g, for t < S.n_tok.
//
// Bindings (group 0):
//   0 P  uniform  NormParams
//   1 S  uniform  Step
//   2 x  storage read        array<f32>  input rows, token t at t*stride
//   3 g  storage read        array<f32>  the norm weight (dim floats)
//   4 y  storage read_write  array<f32>  output rows, token t at t*stride
// Workgroup: 256 threads per token; the sum of squares goes through a shared-memory tree.
// Dispatch: (T, 1, 1).

//#include "common.wgsl"

struct NormParams {
    dim: u32,
    stride: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> P: NormParams;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = wid.x * P.stride;
    var ss = 0.0;
    for (var i = lid; i < P.dim; i += 256u) {
        let v = x[base + i];
        ss += v * v;
    }
    part[lid] = ss;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(part[0] / f32(P.dim) + P.eps);
    for (var i = lid; i < P.dim; i += 256u) {
        y[base + i] = x[base + i] * inv * g[i];
    }
}
