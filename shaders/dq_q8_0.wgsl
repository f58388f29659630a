// dq_q8_0.wgsl: dq4 for Q8_0 rows: blocks of 32 elements in 34 bytes, `d` f16 at 0 and qs[32] int8 at 2.
// Value = d * qs[i].
//#include "bytes.wgsl"

// dq4 returns elements k..k+3 (k % 4 == 0) of the row starting at byte rb.
fn dq4(rb: u32, k: u32) -> vec4<f32> {
    let base = rb + (k >> 5u) * 34u;
    let d = f16_at(base);
    return d * i8x4(u32_at(base + 2u + (k & 31u)));
}
