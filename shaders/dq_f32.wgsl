// dq_f32.wgsl: dq4 for F32 rows. A row is K little-endian floats; rb is the row's byte offset in `w`.
//#include "bytes.wgsl"

// dq4 returns elements k..k+3 (k % 4 == 0) of the row starting at byte rb.
fn dq4(rb: u32, k: u32) -> vec4<f32> {
    let i = (rb >> 2u) + k;
    return vec4<f32>(bitcast<f32>(wword(i)), bitcast<f32>(wword(i + 1u)), bitcast<f32>(wword(i + 2u)), bitcast<f32>(wword(i + 3u)));
}
