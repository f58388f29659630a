// mm_tile_q6_k.wgsl: matmul.wgsl's weight tile for Q6_K (layout: matvec_q6_k.wgsl's header, 224-byte
// blocks): TK = 64
// dequantized weights per row, quarters q0, q0+1 (q0 even) of half n of a super-block, elements
// 128n + 32q0 + 32j + l: low bits from ql[64n + 32j + l] (nibble q0/2), high bits from qh[32n + l]
// (bits 2(q0+j)); stored through matmul.wgsl's put_w. A fill unit is one row: 96 bytes of ql
// and qh as six vec4<u32> loads (the device's blocks and rows are multiples of 16 bytes), the four int8
// scales (16 elements each) in one word, each decoded once, and d; the 6-bit codes are merged four a
// word.

//#include "weights.wgsl"

const TK = 64u;

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    let blk = k0 >> 8u;
    let n = (k0 >> 7u) & 1u;
    let q0 = (k0 >> 5u) & 3u;
    let lsh = vec4<u32>(2u * q0); // (q0/2)*4: nibble 0 or 1
    for (var r = lid; r < TM; r += NT) {
        let b4 = (min(row0 + r, P.m - 1u) * P.row_bytes + blk * 224u) >> 4u; // the block, in vec4s
        let d = unpack2x16float(wvec(b4 + 13u).x).x; // byte 208
        let scw = wvec(b4 + 12u)[2u * n + (q0 >> 1u)]; // bytes 192 + 8n + 2q0 ..
        for (var h = 0u; h < 2u; h++) {
            let qh = wvec(b4 + 8u + 2u * n + h); // byte 128 + 32n + 16h
            for (var j = 0u; j < 2u; j++) {
                // Elements 32j + 16h .. +15 share scale 2j + h.
                let s = 2u * j + h;
                let ds = d * f32(bitcast<i32>(scw << (24u - 8u * s)) >> 24u);
                let codes = ((wvec(b4 + 4u * n + 2u * j + h) >> lsh) & vec4<u32>(0x0F0F0F0Fu)) |
                    (((qh >> vec4<u32>(2u * (q0 + j))) & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
                for (var i = 0u; i < 4u; i++) {
                    let c = (vec4<u32>(codes[i]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
                    put_w(32u * j + 16u * h + 4u * i, r, ds * (vec4<f32>(c) - 32.0));
                }
            }
        }
    }
}
