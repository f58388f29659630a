// dq_q4_k.wgsl: dq4 for Q4_K rows: super-blocks of 256 elements in 144 bytes (always word aligned):
// d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16. Eight sub-blocks of 32 share a 6-bit scale sc and
// min m; element 64g+l is the low nibble of qs[32g+l] (sub-block 2g), element 64g+32+l its high nibble
// (sub-block 2g+1). Value = d*sc*q - dmin*m.
//#include "bytes.wgsl"

// dq4 returns elements k..k+3 (k % 4 == 0) of the row starting at byte rb.
fn dq4(rb: u32, k: u32) -> vec4<f32> {
    let base = (rb >> 2u) + (k >> 8u) * 36u; // word index of the super-block
    let j = k & 255u;
    let s = j >> 5u;                         // sub-block 0..7
    let dm = unpack2x16float(wword(base));
    // get_scale_min_k4: S[0..11] = bytes 4..15 of the block, i.e. words base+1..base+3.
    var sc: u32;
    var m: u32;
    if (s < 4u) {
        sc = sbyte(base, s) & 63u;
        m = sbyte(base, s + 4u) & 63u;
    } else {
        let lo = sbyte(base, s + 4u);
        sc = (lo & 0x0Fu) | ((sbyte(base, s - 4u) >> 6u) << 4u);
        m = (lo >> 4u) | ((sbyte(base, s) >> 6u) << 4u);
    }
    let g = j >> 6u;
    let l = j & 31u;
    let q = wword(base + 4u + g * 8u + (l >> 2u)) >> ((s & 1u) * 4u);
    let nib = vec4<f32>(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) & vec4<u32>(0x0Fu));
    return dm.x * f32(sc) * nib - vec4<f32>(dm.y * f32(m));
}

// sbyte is byte i of the 12 scale bytes of the super-block at word index base.
fn sbyte(base: u32, i: u32) -> u32 {
    return (wword(base + 1u + (i >> 2u)) >> ((i & 3u) * 8u)) & 0xFFu;
}
