// silu.wgsl: SiLU for the SwiGLU feed-forward, silu(g) = g / (1 + exp(-g)), included by the mat-vec
// and mat-mat kernels' GLU variant, which multiply it with the up projection as they store it. For very
// negative g, exp(-g) overflows to +inf and the quotient is -0, the limit.

fn silu(g: f32) -> f32 {
    return g / (1.0 + exp(-g));
}
