// dq_q6_k.wgsl: dq4 for Q6_K rows: super-blocks of 256 elements in 210 bytes, padded to 224 on the
// device (gpu/buffer.go's kernelTypes): ql[128] @0, qh[64] @128, scales[16] int8 @192, d f16 @208. Half n (128 elements) uses ql[64n..], qh[32n..]; in it, quarter q
// (32 elements, l = 0..31) takes 4 low bits from ql[64n + 32(q%2) + l] (low nibble for q < 2, high
// nibble otherwise) and 2 high bits from qh[32n + l] bits 2q..2q+1. Element e uses scales[e/16].
// Value = d * scale * (q6 - 32).
//#include "bytes.wgsl"

// dq4 returns elements k..k+3 (k % 4 == 0) of the row starting at byte rb.
fn dq4(rb: u32, k: u32) -> vec4<f32> {
    let base = rb + (k >> 8u) * 224u;
    let j = k & 255u;
    let n = j >> 7u;
    let q = (j >> 5u) & 3u;
    let l = j & 31u;
    let lo = u32_at(base + 64u * n + 32u * (q & 1u) + l) >> ((q >> 1u) * 4u);
    let hi = u32_at(base + 128u + 32u * n + l) >> (2u * q);
    let lo4 = vec4<u32>(lo, lo >> 8u, lo >> 16u, lo >> 24u) & vec4<u32>(0x0Fu);
    let hi4 = vec4<u32>(hi, hi >> 8u, hi >> 16u, hi >> 24u) & vec4<u32>(0x03u);
    let q6 = vec4<f32>(lo4 | (hi4 << vec4<u32>(4u))) - vec4<f32>(32.0);
    let sc = bitcast<i32>(u8_at(base + 192u + (j >> 4u)) << 24u) >> 24u;
    return f16_at(base + 208u) * f32(sc) * q6;
}
