// mm_tile_dq4.wgsl: matmul.wgsl's weight tile for any type with a dq4 (dq_{WTYPE}.wgsl: F32, F16,
// Q8_0): TK = 32 dequantized weights per row, [k][row / 4] as vec4 of 4 rows (f16 with F16). A fill
// unit is 4 consecutive k of one row, one dq4 call; units row-fastest, so neighbouring threads read
// neighbouring rows. K past the row's end (F32/F16 rows may end mid-tile) reads zeros.

@group(0) @binding(2) var<storage, read> w: array<u32>;

//#include "dq_{{WTYPE}}.wgsl"

const TK = 32u;

var<workgroup> wt: array<vec4<elt>, TK * TM4>;

// fill_w dequantizes rows row0..row0+TM-1 (clamped to the chunk's last row), k0..k0+TK-1, into wt.
fn fill_w(row0: u32, k0: u32, lid: u32) {
    for (var u = lid; u < TM * (TK / 4u); u += NT) {
        let r = u % TM;
        let kk = 4u * (u / TM);
        var v = vec4<f32>(0.0);
        if (k0 + kk < P.k) {
            v = dq4(min(row0 + r, P.m - 1u) * P.row_bytes, k0 + kk);
        }
        for (var c = 0u; c < 4u; c++) {
            wt[(kk + c) * TM4 + (r >> 2u)][r & 3u] = elt(v[c]);
        }
    }
}

// w4 returns the weights at tile depth kk of tile rows 4q .. 4q+3.
fn w4(kk: u32, q: u32) -> vec4<f32> {
    return vec4<f32>(wt[kk * TM4 + q]);
}
