// dq_f16.wgsl: dq4 for F16 rows. A row is K IEEE halves; K % 4 == 0 keeps rb 8-byte aligned.
//#include "bytes.wgsl"

// dq4 returns elements k..k+3 (k % 4 == 0) of the row starting at byte rb.
fn dq4(rb: u32, k: u32) -> vec4<f32> {
    let i = (rb >> 2u) + (k >> 1u);
    return vec4<f32>(unpack2x16float(wword(i)), unpack2x16float(wword(i + 1u)));
}
