// head_rope.wgsl: per-head work on the query or key heads after their projection, in place, for the
// families whose RoPE the projection cannot fuse (rope_pair.wgsl rotates adjacent pairs only, and only
// un-normed heads):
//   NORM: QK-norm, x_h = x_h * 1/sqrt(mean(x_h^2) + eps) * g    (g: one head of gains)
//   ROPE: rotate the first rope_dim dims of the head by the (cos, sin) pairs in cs (token t pair i at
//         t*(rope_dim/2) + i, computed on the host by model.Config.RopeAngles): pairs (2i, 2i+1), or with
//         NEOX (i, i + rope_dim/2):
//           y[a] = x[a]*cos - x[b]*sin,  y[b] = x[a]*sin + x[b]*cos
// The norm comes first (llama.cpp's llm_build_qwen3: build_norm, then ggml_rope_ext).
//
// Bindings (group 0):
//   0 P  uniform  HeadParams
//   1 S  uniform  Step
//   2 g  storage read        array<f32>        NORM: the gains (head_dim floats); else unused
//   3 cs storage read        array<vec2<f32>>  ROPE: (cos, sin) per token and pair; else unused
//   4 x  storage read_write  array<f32>        heads, token t head h at t*stride + h*head_dim
// Workgroup: 64 threads per (head, token); the sum of squares goes through a shared-memory tree.
// Dispatch: (heads, T, 1).

//#include "common.wgsl"

struct HeadParams {
    head_dim: u32,
    stride: u32,
    rope_dim: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> P: HeadParams;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

const WG = 64u;
var<workgroup> part: array<f32, WG>;

// normed is element d of the head at base, QK-normed by inv when NORM.
fn normed(base: u32, d: u32, inv: f32) -> f32 {
//#if NORM
    return x[base + d] * inv * g[d];
//#else
    return x[base + d];
//#endif
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wid.y;
    let base = t * P.stride + wid.x * P.head_dim;
    var inv = 1.0;
//#if NORM
    var ss = 0.0;
    for (var i = lid; i < P.head_dim; i += WG) {
        let v = x[base + i];
        ss += v * v;
    }
    part[lid] = ss;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    inv = inverseSqrt(part[0] / f32(P.head_dim) + P.eps);
//#endif
    // Each thread reads and writes only its own pairs (and its own unrotated dims), so in place is safe.
//#if ROPE
    let nh = P.rope_dim / 2u;
    for (var i = lid; i < nh; i += WG) {
//#if NEOX
        let a = i;
        let b = i + nh;
//#else
        let a = 2u * i;
        let b = 2u * i + 1u;
//#endif
        let c = cs[t * nh + i];
        let xa = normed(base, a, inv);
        let xb = normed(base, b, inv);
        x[base + a] = xa * c.x - xb * c.y;
        x[base + b] = xa * c.y + xb * c.x;
    }
    let rest0 = P.rope_dim;
//#else
    let rest0 = 0u;
//#endif
//#if NORM
    for (var d = rest0 + lid; d < P.head_dim; d += WG) {
        x[base + d] = normed(base, d, inv);
    }
//#endif
}
