// mm_tile_dq4.wgsl: matmul.wgsl's weight tile for any type with a dq4 (dq_{WTYPE}.wgsl: F32, F16,
// Q8_0): TK = 32 dequantized weights per row, stored through matmul.wgsl's put_w. A fill
// unit is 4 consecutive k of one row, one dq4 call; units row-fastest, so neighbouring threads read
// neighbouring rows. K past the row's end (F32/F16 rows may end mid-tile) reads zeros.

//#include "weights.wgsl"

//#include "dq_{{WTYPE}}.wgsl"

const TK = 32u;

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    for (var u = lid; u < TM * (TK / 4u); u += NT) {
        let r = u % TM;
        let kk = 4u * (u / TM);
        var v = vec4<f32>(0.0);
        if (k0 + kk < P.k) {
            v = dq4(min(row0 + r, P.m - 1u) * P.row_bytes, k0 + kk);
        }
        put_w(kk, r, v);
    }
}
