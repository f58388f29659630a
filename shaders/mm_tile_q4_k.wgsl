// mm_tile_q4_k.wgsl: matmul.wgsl's weight tile filler for Q4_K (layout: matvec_q4_k.wgsl's header). A
// tile's TK = 32 elements are one sub-block s of a super-block: a unit is that sub-block of one row. It
// loads the super-block header (one vec4<u32>: d, dmin, the 12 scale bytes) and the 32 quant bytes of
// group s/2 (two vec4<u32>, the sub-block's codes in nibble s%2), decodes the sub-block's scale and min
// once, and stores 32 values d*sc*q - dmin*m.

@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    let blk = k0 >> 8u;
    let s = (k0 >> 5u) & 7u;
    let g = s >> 1u;
    let nib = (s & 1u) * 4u;
    let sh = (s & 3u) * 8u;
    for (var r = lid; r < TM; r += NT) {
        let vb = min(row0 + r, P.m - 1u) * (P.row_bytes >> 4u) + blk * 9u;
        let hdr = w[vb];
        // get_scale_min_k4 for sub-block s: byte s%4 of the scale and min words of sub-blocks 0..3 or 4..7.
        let hi = s >= 4u;
        let sc = (select(hdr.y & 0x3F3F3F3Fu, (hdr.w & 0x0F0F0F0Fu) | ((hdr.y >> 2u) & 0x30303030u), hi) >> sh) & 0xFFu;
        let mn = (select(hdr.z & 0x3F3F3F3Fu, ((hdr.w >> 4u) & 0x0F0F0F0Fu) | ((hdr.z >> 2u) & 0x30303030u), hi) >> sh) & 0xFFu;
        let dm = unpack2x16float(hdr.x);
        let ds = dm.x * f32(sc);
        let ms = dm.y * f32(mn);
        let m4 = vec4<u32>(0x0F0F0F0Fu);
        let q = array<vec4<u32>, 2>((w[vb + 1u + 2u * g] >> vec4<u32>(nib)) & m4, (w[vb + 2u + 2u * g] >> vec4<u32>(nib)) & m4);
        for (var i = 0u; i < 8u; i++) {
            let word = q[i >> 2u][i & 3u];
            for (var b = 0u; b < 4u; b++) {
                put_w(4u * i + b, r, ds * f32((word >> (8u * b)) & 0xFFu) - ms);
            }
        }
    }
}
