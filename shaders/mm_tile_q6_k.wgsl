// mm_tile_q6_k.wgsl: matmul.wgsl's weight tile filler for Q6_K (layout: matvec_q6_k.wgsl's header). A
// tile's TK = 32 elements are one quarter q of half n of a super-block (elements 128n + 32q + l): a unit
// is that quarter of one row. It loads its 32 low-bit bytes (ql, nibble q/2) and 32 high-bit bytes (qh,
// bits 2q..2q+1) as four 16-byte load4s, its two int8 scales (16 elements each) in one word and d,
// decodes each scale once, merges the 6-bit codes four a word and stores 32 values d*sc*(q6 - 32).

@group(0) @binding(2) var<storage, read> w: array<u32>;

//#include "bytes.wgsl"

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    let blk = k0 >> 8u;
    let n = (k0 >> 7u) & 1u;
    let q = (k0 >> 5u) & 3u;
    let lsh = vec4<u32>((q >> 1u) * 4u);
    let hsh = vec4<u32>(2u * q);
    for (var r = lid; r < TM; r += NT) {
        let base = min(row0 + r, P.m - 1u) * P.row_bytes + blk * 210u;
        let lo = base + 64u * n + 32u * (q & 1u);
        let hi = base + 128u + 32u * n;
        var codes: array<vec4<u32>, 2>;
        for (var h = 0u; h < 2u; h++) {
            codes[h] = ((load4(lo + 16u * h) >> lsh) & vec4<u32>(0x0F0F0F0Fu)) |
                (((load4(hi + 16u * h) >> hsh) & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
        }
        let d = f16_at(base + 208u);
        let scw = u32_at(base + 192u + 8u * n + 2u * q);
        for (var h = 0u; h < 2u; h++) {
            let ds = d * f32(bitcast<i32>(scw << (24u - 8u * h)) >> 24u);
            for (var i = 0u; i < 4u; i++) {
                let word = codes[h][i];
                for (var b = 0u; b < 4u; b++) {
                    put_w(16u * h + 4u * i + b, r, ds * (f32((word >> (8u * b)) & 0xFFu) - 32.0));
                }
            }
        }
    }
}
