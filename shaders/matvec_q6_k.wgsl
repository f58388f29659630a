// matvec_q6_k.wgsl: decode mat-vec over Q6_K weights, y[t][out_off + r] = sum_k W[r][k] * x[t][k], with
// the fused stores of matvec_io.wgsl (ACCUM, GLU, ROPE).
//
// Data layout: a row is K/256 super-blocks of 210 bytes padded to 224 on the device (gpu/buffer.go's
// kernelTypes), fourteen vec4<u32> (w is bound as vec4 words, so a row starts at vec4 row * K/256 * 14):
// ql[128] @0 (vec4s 0..7), qh[64] @128 (vec4s 8..11), scales[16] int8 @192 (vec4 12), d f16 @208 (low
// half of vec4 13's first word), 14 bytes of zeros. Half n (128 elements) of a
// block uses ql[64n..], qh[32n..]; element 128n + 32q + l (quarter q, l < 32) takes 4 low bits from
// ql[64n + 32(q%2) + l] (low nibble for q < 2, high nibble otherwise) and 2 high bits from qh[32n + l]
// bits 2q..2q+1. Element e uses scales[e/16]. Value = d * scale * (q6 - 32).
//
// Workgroup: WG threads computing ROWS consecutive rows for NT tokens (matvec_io.wgsl). A thread's unit
// of work is 64 elements of one half n of a super-block: l = 16h..16h+15 of its four quarters, each
// quarter's 16 one scale group. For one token it loads their 16 x vec4s and four sums once for all ROWS
// rows; per row it loads 16 bytes each of ql (two places) and qh and the scale words, merges the 6-bit
// codes four bytes per word op, decodes the four scales once (16 elements each, the scale granularity
// of Q6_K) and accumulates d * Σ_q sc_q * (Σx·q6 - 32 Σx), so the -32 offset costs nothing per element.
// Threads take units lid, lid+WG, ...
// FEW (NT > 1): the thread first loads every token's 16 x vec4s and sums (or quantizes them, INT8), then
// per row loads the weight words, merges the codes and decodes the scales once (the codes widened to
// floats once on the float path) and applies them to each token in turn, so the NT tokens share the
// weights' loads and unpacking (matvec_q4_k.wgsl has the figures).
// reduce_rows (subgroupAdd when SUBGROUPS, whatever the subgroup size; a shared-memory tree otherwise)
// combines the threads' partial sums.
// INT8 (q8.wgsl): the thread quantizes each quarter's 16 activations once per token (a scale each, the
// scale granularity of the weights) and takes Σx·q6 as scale * dot4I8Packed sums, Σx for the -32
// offset from the quantized sums.
// Dispatch: grid (see common.wgsl) of ceil(M/ROWS) workgroups along x/y, ceil(T/NT) along z.
// Requires K % 256 == 0 and x_stride % 4 == 0.

//#include "matvec_io.wgsl"
//#include "packed.wgsl"
//#if INT8
//#include "q8.wgsl"
//#endif

//#include "weights.wgsl"

@compute @workgroup_size({{WG}})
fn main(id: MatIds) {
    let rows = row_indices(first_row(id));
    let nt = token_count(id);
    let row_vecs = P.row_bytes >> 4u;
    var acc: array<array<f32, {{ROWS}}>, {{NT}}>;
    let units = P.k >> 6u;
    for (var u = id.lid; u < units; u += {{WG}}u) {
        let blk = u >> 2u;
        let n = (u >> 1u) & 1u;
        let h = u & 1u;
//#if FEW
        // Every token's activations first, then each row's weights once for all of them.
//#if INT8
        var xq: array<array<Q8x16, 4>, {{NT}}>;
//#else
        var xs: array<array<vec4<f32>, 16>, {{NT}}>;
//#endif
        var sx: array<vec4<f32>, {{NT}}>;
        for (var tt = 0u; tt < {{NT}}u; tt++) {
            if (tt < nt) {
                let xt = first_token(id) + tt;
                let xi = blk * 64u + n * 32u + h * 4u;
//#if INT8
                xq[tt][0] = q8x16(xvec(xt, xi), xvec(xt, xi + 1u), xvec(xt, xi + 2u), xvec(xt, xi + 3u));
                xq[tt][1] = q8x16(xvec(xt, xi + 8u), xvec(xt, xi + 9u), xvec(xt, xi + 10u), xvec(xt, xi + 11u));
                xq[tt][2] = q8x16(xvec(xt, xi + 16u), xvec(xt, xi + 17u), xvec(xt, xi + 18u), xvec(xt, xi + 19u));
                xq[tt][3] = q8x16(xvec(xt, xi + 24u), xvec(xt, xi + 25u), xvec(xt, xi + 26u), xvec(xt, xi + 27u));
                sx[tt] = vec4<f32>(xq[tt][0].s, xq[tt][1].s, xq[tt][2].s, xq[tt][3].s);
//#else
                xs[tt][0] = xvec(xt, xi);
                xs[tt][1] = xvec(xt, xi + 1u);
                xs[tt][2] = xvec(xt, xi + 2u);
                xs[tt][3] = xvec(xt, xi + 3u);
                xs[tt][4] = xvec(xt, xi + 8u);
                xs[tt][5] = xvec(xt, xi + 9u);
                xs[tt][6] = xvec(xt, xi + 10u);
                xs[tt][7] = xvec(xt, xi + 11u);
                xs[tt][8] = xvec(xt, xi + 16u);
                xs[tt][9] = xvec(xt, xi + 17u);
                xs[tt][10] = xvec(xt, xi + 18u);
                xs[tt][11] = xvec(xt, xi + 19u);
                xs[tt][12] = xvec(xt, xi + 24u);
                xs[tt][13] = xvec(xt, xi + 25u);
                xs[tt][14] = xvec(xt, xi + 26u);
                xs[tt][15] = xvec(xt, xi + 27u);
                let one = vec4<f32>(1.0);
                sx[tt] = vec4<f32>(dot(xs[tt][0] + xs[tt][1] + xs[tt][2] + xs[tt][3], one),
                    dot(xs[tt][4] + xs[tt][5] + xs[tt][6] + xs[tt][7], one),
                    dot(xs[tt][8] + xs[tt][9] + xs[tt][10] + xs[tt][11], one),
                    dot(xs[tt][12] + xs[tt][13] + xs[tt][14] + xs[tt][15], one));
//#endif
            }
        }
//#else
        let xt = first_token(id);
        let xi = blk * 64u + n * 32u + h * 4u;
        // Quarter q's 16 elements start at element 256blk + 128n + 32q + 16h: x vec4 xi + 8q.
        var xs: array<vec4<f32>, 16>;
        for (var q = 0u; q < 4u; q++) {
            for (var j = 0u; j < 4u; j++) {
                xs[4u * q + j] = xvec(xt, xi + 8u * q + j);
            }
        }
//#if INT8
        let xq0 = q8x16(xs[0], xs[1], xs[2], xs[3]);
        let xq1 = q8x16(xs[4], xs[5], xs[6], xs[7]);
        let xq2 = q8x16(xs[8], xs[9], xs[10], xs[11]);
        let xq3 = q8x16(xs[12], xs[13], xs[14], xs[15]);
        let sx = vec4<f32>(xq0.s, xq1.s, xq2.s, xq3.s);
//#else
        let one = vec4<f32>(1.0);
        let sx = vec4<f32>(dot(xs[0] + xs[1] + xs[2] + xs[3], one), dot(xs[4] + xs[5] + xs[6] + xs[7], one),
            dot(xs[8] + xs[9] + xs[10] + xs[11], one), dot(xs[12] + xs[13] + xs[14] + xs[15], one));
//#endif
//#endif
        let m4 = vec4<u32>(0x0F0F0F0Fu);
        let m2 = vec4<u32>(0x30303030u);
        for (var r = 0u; r < {{ROWS}}u; r++) {
            let vb = rows[r] * row_vecs + blk * 14u;
            let ql0 = wvec(vb + 4u * n + h);       // ql[64n + 16h ..]
            let ql1 = wvec(vb + 4u * n + 2u + h);  // ql[64n + 32 + 16h ..]
            let qh = wvec(vb + 8u + 2u * n + h);   // qh[32n + 16h ..]
            // Scales 8n + h + {0, 2, 4, 6} (quarters 0..3) are bytes h and h+2 of words 2n and 2n+1.
            let sw = wvec(vb + 12u);
            let s01 = select(sw.x, sw.z, n == 1u) >> (8u * h);
            let s23 = select(sw.y, sw.w, n == 1u) >> (8u * h);
            let sc = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(s01, s01 >> 16u, s23, s23 >> 16u) << vec4<u32>(24u)) >> vec4<u32>(24u));
            let d = unpack2x16float(wvec(vb + 13u).x).x;
            // 6-bit codes, four per word: low nibbles from ql, bits 4..5 from qh.
            let q0 = (ql0 & m4) | ((qh << vec4<u32>(4u)) & m2);
            let q1 = (ql1 & m4) | ((qh << vec4<u32>(2u)) & m2);
            let q2 = ((ql0 >> vec4<u32>(4u)) & m4) | (qh & m2);
            let q3 = ((ql1 >> vec4<u32>(4u)) & m4) | ((qh >> vec4<u32>(2u)) & m2);
//#if FEW
//#if INT8
//#else
            // The codes as floats, once for all the tokens.
            let c0 = u8x4(q0.x);
            let c1 = u8x4(q0.y);
            let c2 = u8x4(q0.z);
            let c3 = u8x4(q0.w);
            let c4 = u8x4(q1.x);
            let c5 = u8x4(q1.y);
            let c6 = u8x4(q1.z);
            let c7 = u8x4(q1.w);
            let c8 = u8x4(q2.x);
            let c9 = u8x4(q2.y);
            let c10 = u8x4(q2.z);
            let c11 = u8x4(q2.w);
            let c12 = u8x4(q3.x);
            let c13 = u8x4(q3.y);
            let c14 = u8x4(q3.z);
            let c15 = u8x4(q3.w);
//#endif
            for (var tt = 0u; tt < {{NT}}u; tt++) {
                if (tt < nt) {
//#if INT8
                    let dq = vec4<f32>(xq[tt][0].d * f32(idot16(q0, xq[tt][0].q)), xq[tt][1].d * f32(idot16(q1, xq[tt][1].q)),
                        xq[tt][2].d * f32(idot16(q2, xq[tt][2].q)), xq[tt][3].d * f32(idot16(q3, xq[tt][3].q)));
//#else
                    let dq = vec4<f32>(dot(c0, xs[tt][0]) + dot(c1, xs[tt][1]) + dot(c2, xs[tt][2]) + dot(c3, xs[tt][3]),
                        dot(c4, xs[tt][4]) + dot(c5, xs[tt][5]) + dot(c6, xs[tt][6]) + dot(c7, xs[tt][7]),
                        dot(c8, xs[tt][8]) + dot(c9, xs[tt][9]) + dot(c10, xs[tt][10]) + dot(c11, xs[tt][11]),
                        dot(c12, xs[tt][12]) + dot(c13, xs[tt][13]) + dot(c14, xs[tt][14]) + dot(c15, xs[tt][15]));
//#endif
                    acc[tt][r] += d * dot(sc, dq - 32.0 * sx[tt]);
                }
            }
//#else
//#if INT8
            let dq = vec4<f32>(xq0.d * f32(idot16(q0, xq0.q)), xq1.d * f32(idot16(q1, xq1.q)),
                xq2.d * f32(idot16(q2, xq2.q)), xq3.d * f32(idot16(q3, xq3.q)));
//#else
            let dq = vec4<f32>(dot_u8x16(q0, xs[0], xs[1], xs[2], xs[3]), dot_u8x16(q1, xs[4], xs[5], xs[6], xs[7]),
                dot_u8x16(q2, xs[8], xs[9], xs[10], xs[11]), dot_u8x16(q3, xs[12], xs[13], xs[14], xs[15]));
//#endif
            acc[0][r] += d * dot(sc, dq - 32.0 * sx);
//#endif
        }
    }
    finish_rows(acc, id);
}
