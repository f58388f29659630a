// mm_tile_q4_k.wgsl: matmul.wgsl's weight tile for Q4_K (layout: matvec_q4_k.wgsl's header): TK = 64
// dequantized weights per row, one group g of a super-block (sub-blocks 2g and 2g+1, the low and high
// nibbles of the group's 32 quant bytes), stored through matmul.wgsl's put_w. A fill unit is
// one row: the super-block header (one vec4<u32>: d, dmin, the scale bytes) and the group's codes (two
// vec4<u32>); each sub-block's scale and min decoded once (32 elements each).

//#include "weights.wgsl"

const TK = 64u;

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    let blk = k0 >> 8u;
    let g = (k0 >> 6u) & 3u;
    // get_scale_min_k4 for sub-blocks 2g, 2g+1: bytes 2(g%2), 2(g%2)+1 of the scale and min words of
    // sub-blocks 0..3 (g < 2) or 4..7.
    let hi = g >= 2u;
    let sh = (g & 1u) * 16u;
    for (var r = lid; r < TM; r += NT) {
        let vb = min(row0 + r, P.m - 1u) * (P.row_bytes >> 4u) + blk * 9u;
        let hdr = wvec(vb);
        let sc = select(hdr.y & 0x3F3F3F3Fu, (hdr.w & 0x0F0F0F0Fu) | ((hdr.y >> 2u) & 0x30303030u), hi) >> sh;
        let mn = select(hdr.z & 0x3F3F3F3Fu, ((hdr.w >> 4u) & 0x0F0F0F0Fu) | ((hdr.z >> 2u) & 0x30303030u), hi) >> sh;
        let dm = unpack2x16float(hdr.x);
        let q = array<vec4<u32>, 2>(wvec(vb + 1u + 2u * g), wvec(vb + 2u + 2u * g));
        for (var h = 0u; h < 2u; h++) {
            let ds = dm.x * f32((sc >> (8u * h)) & 0xFFu);
            let ms = dm.y * f32((mn >> (8u * h)) & 0xFFu);
            for (var i = 0u; i < 8u; i++) {
                let word = q[i >> 2u][i & 3u] >> (4u * h);
                let codes = (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0x0Fu);
                put_w(32u * h + 4u * i, r, ds * vec4<f32>(codes) - ms);
            }
        }
    }
}
