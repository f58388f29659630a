// rope_pair.wgsl: rotary position embedding, NORM (adjacent-pair) variant, applied by the mat-vec and
// mat-mat kernels (ROPE) to the query and key heads they produce, as they store them:
//   y'[2i]   = y[2i]*cos(th) - y[2i+1]*sin(th)
//   y'[2i+1] = y[2i]*sin(th) + y[2i+1]*cos(th),   th = pos * base^(-2i/rope_dim), i < rope_dim/2,
// for every head of P.head_dim outputs; the other dims of a head pass unrotated. The host computes
// (cos, sin) per token and pair in float64 and uploads them with the step (binding cs: token t pair i at
// t*(rope_dim/2) + i), so the GPU's sin/cos precision on large angles never matters. The host uses the
// plain kernels on NoPE layers.
//
// rope_pair returns output `row` (an index into the whole product, so heads are counted from its first
// row) of token t, given its pair's two sums: even is row's if row is even, else its partner's.

fn rope_pair(even: f32, odd: f32, is_odd: bool, t: u32, row: u32) -> f32 {
    let d = row % P.head_dim;
    if (d >= P.rope_dim) {
        return select(even, odd, is_odd);
    }
    let c = cs[t * (P.rope_dim / 2u) + d / 2u];
    if (is_odd) {
        return even * c.y + odd * c.x;
    }
    return even * c.x - odd * c.y;
}
