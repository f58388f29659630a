// rope.wgsl: rotary position embedding, NORM (adjacent-pair) variant, in place on the heads of x:
//   x'[2i]   = x[2i]*cos(th) - x[2i+1]*sin(th)
//   x'[2i+1] = x[2i]*sin(th) + x[2i+1]*cos(th),   th = pos * base^(-2i/rope_dim), i < rope_dim/2.
// The host computes (cos, sin) per token and pair in float64 and uploads them with the step, so the
// GPU's sin/cos precision on large angles never matters. The host skips this kernel on NoPE layers.
//
// Bindings (group 0):
//   0 P   uniform  RopeParams
//   1 S   uniform  Step
//   2 x   storage read_write  array<f32>        heads, token t head h at t*stride + h*head_dim
//   3 cs  storage read        array<vec2<f32>>  (cos, sin), token t pair i at t*(rope_dim/2) + i
// Workgroup: 64 threads, one pair each. Dispatch: (ceil(n_heads*rope_dim/2 / 64), T, 1).

//#include "common.wgsl"

struct RopeParams {
    n_heads: u32,
    head_dim: u32,
    rope_dim: u32, // rotated dims per head (even, <= head_dim)
    stride: u32,
}

@group(0) @binding(0) var<uniform> P: RopeParams;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let npairs = P.rope_dim / 2u;
    let t = gid.y;
    if (gid.x >= P.n_heads * npairs || t >= S.n_tok) {
        return;
    }
    let h = gid.x / npairs;
    let i = gid.x % npairs;
    let at = t * P.stride + h * P.head_dim + 2u * i;
    let c = cs[t * npairs + i];
    let a = x[at];
    let b = x[at + 1u];
    x[at] = a * c.x - b * c.y;
    x[at + 1u] = a * c.y + b * c.x;
}
