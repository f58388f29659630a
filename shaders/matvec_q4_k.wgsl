// matvec_q4_k.wgsl: decode mat-vec over Q4_K weights, y[t][out_off + r] = sum_k W[r][k] * x[t][k], with
// the fused stores of matvec_io.wgsl (ACCUM, GLU, ROPE).
//
// Data layout: a row is K/256 super-blocks of 144 bytes, nine vec4<u32> (w is bound as vec4 words, so a
// row starts at vec4 row * K/256 * 9; 144 and the row size are multiples of 16): vec4 0 holds d and dmin
// (f16, word 0) and the 12 scale bytes (words 1..3); vec4s 1..8 hold qs[128]. Group g = 0..3 of a
// super-block is qs[32g..32g+31] (vec4s 1+2g, 2+2g): element 64g+l is the low nibble of qs[32g+l]
// (sub-block 2g), element 64g+32+l its high nibble (sub-block 2g+1). Value = d*sc*q - dmin*m with the
// 6-bit sc and m of the sub-block.
//
// Workgroup: WG threads computing ROWS consecutive rows for NT tokens (matvec_io.wgsl). A thread's unit
// of work is one group of one super-block, 64 elements; threads take groups lid, lid+WG, ...: neighbours
// read neighbouring 32-byte pieces of a row. For one token it loads the group's 16 x vec4s once and
// reuses them, and their two sub-block sums, for all ROWS rows; per row it loads the super-block header
// (one vec4) and the group's 32 quant bytes (two vec4s), unpacks the two sub-blocks' scales and mins
// once (32 elements each), and accumulates d*(sc0*Σx·q + sc1*Σx·q) - dmin*(m0*Σx + m1*Σx), so the min
// costs nothing per element.
// FEW (NT > 1): the thread first loads every token's 16 x vec4s (or quantizes them, INT8), then per row
// loads the weight words and unpacks the codes once (to floats on the float path) and applies them to
// each token in turn: the weights' loads and unpacking are shared by the NT tokens, not redone per token.
// On lavapipe, where a load costs a per-lane loop, 4 tokens cost about twice one per weight (the K=512
// shapes of docs/BENCHMARKS.md), where they cost four times when each token re-ran the unit.
// reduce_rows (subgroupAdd when SUBGROUPS, whatever the subgroup size; a shared-memory tree otherwise)
// combines the threads' partial sums.
// INT8 (q8.wgsl): the thread quantizes its 64 activations once per token (four groups of 16, a scale
// each) and takes each Σx·q as Σ_16 scale * dot4I8Packed sums, and Σx for the min term from the
// quantized sums.
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
    let groups = P.k >> 6u;
    for (var gi = id.lid; gi < groups; gi += {{WG}}u) {
        let blk = gi >> 2u;
        let g = gi & 3u;
//#if FEW
        // Every token's activations first (elements 64g..64g+31, sub-block 2g, then 64g+32.., 2g+1), then
        // each row's weights once for all of them.
//#if INT8
        var xq: array<array<Q8x16, 4>, {{NT}}>;
//#else
        var xs: array<array<vec4<f32>, 16>, {{NT}}>;
//#endif
        var sx: array<vec2<f32>, {{NT}}>;
        for (var tt = 0u; tt < {{NT}}u; tt++) {
            if (tt < nt) {
                let xt = first_token(id) + tt;
                let xi = gi * 16u;
//#if INT8
                xq[tt][0] = q8x16(xvec(xt, xi), xvec(xt, xi + 1u), xvec(xt, xi + 2u), xvec(xt, xi + 3u));
                xq[tt][1] = q8x16(xvec(xt, xi + 4u), xvec(xt, xi + 5u), xvec(xt, xi + 6u), xvec(xt, xi + 7u));
                xq[tt][2] = q8x16(xvec(xt, xi + 8u), xvec(xt, xi + 9u), xvec(xt, xi + 10u), xvec(xt, xi + 11u));
                xq[tt][3] = q8x16(xvec(xt, xi + 12u), xvec(xt, xi + 13u), xvec(xt, xi + 14u), xvec(xt, xi + 15u));
                sx[tt] = vec2<f32>(xq[tt][0].s + xq[tt][1].s, xq[tt][2].s + xq[tt][3].s);
//#else
                xs[tt][0] = xvec(xt, xi);
                xs[tt][1] = xvec(xt, xi + 1u);
                xs[tt][2] = xvec(xt, xi + 2u);
                xs[tt][3] = xvec(xt, xi + 3u);
                xs[tt][4] = xvec(xt, xi + 4u);
                xs[tt][5] = xvec(xt, xi + 5u);
                xs[tt][6] = xvec(xt, xi + 6u);
                xs[tt][7] = xvec(xt, xi + 7u);
                xs[tt][8] = xvec(xt, xi + 8u);
                xs[tt][9] = xvec(xt, xi + 9u);
                xs[tt][10] = xvec(xt, xi + 10u);
                xs[tt][11] = xvec(xt, xi + 11u);
                xs[tt][12] = xvec(xt, xi + 12u);
                xs[tt][13] = xvec(xt, xi + 13u);
                xs[tt][14] = xvec(xt, xi + 14u);
                xs[tt][15] = xvec(xt, xi + 15u);
                let one = vec4<f32>(1.0);
                sx[tt] = vec2<f32>(dot(xs[tt][0] + xs[tt][1] + xs[tt][2] + xs[tt][3] + xs[tt][4] + xs[tt][5] + xs[tt][6] + xs[tt][7], one),
                    dot(xs[tt][8] + xs[tt][9] + xs[tt][10] + xs[tt][11] + xs[tt][12] + xs[tt][13] + xs[tt][14] + xs[tt][15], one));
//#endif
            }
        }
//#else
        // The group's activations: 16 vec4s, elements 64g..64g+31 (sub-block 2g) then 64g+32.. (2g+1).
        var xs: array<vec4<f32>, 16>;
        let xt = first_token(id);
        let xi = gi * 16u;
        for (var j = 0u; j < 16u; j++) {
            xs[j] = xvec(xt, xi + j);
        }
//#if INT8
        // Elements 0..15, 16..31 (sub-block 2g), 32..47, 48..63 (2g+1) of the group.
        let xq0 = q8x16(xs[0], xs[1], xs[2], xs[3]);
        let xq1 = q8x16(xs[4], xs[5], xs[6], xs[7]);
        let xq2 = q8x16(xs[8], xs[9], xs[10], xs[11]);
        let xq3 = q8x16(xs[12], xs[13], xs[14], xs[15]);
        let sx0 = xq0.s + xq1.s;
        let sx1 = xq2.s + xq3.s;
//#else
        let one = vec4<f32>(1.0);
        let sx0 = dot(xs[0] + xs[1] + xs[2] + xs[3] + xs[4] + xs[5] + xs[6] + xs[7], one);
        let sx1 = dot(xs[8] + xs[9] + xs[10] + xs[11] + xs[12] + xs[13] + xs[14] + xs[15], one);
//#endif
//#endif
        // Sub-blocks 2g and 2g+1 are bytes 2(g%2) and 2(g%2)+1 of the unpacked scale and min words of
        // sub-blocks 0..3 (g < 2) or 4..7 (g >= 2); get_scale_min_k4 for four sub-blocks at once.
        let hi = g >= 2u;
        let sh = (g & 1u) * 16u;
        for (var r = 0u; r < {{ROWS}}u; r++) {
            let vb = rows[r] * row_vecs + blk * 9u;
            let hdr = wvec(vb);
            let qa = wvec(vb + 1u + 2u * g);
            let qb = wvec(vb + 2u + 2u * g);
            let scw = select(hdr.y & 0x3F3F3F3Fu, (hdr.w & 0x0F0F0F0Fu) | ((hdr.y >> 2u) & 0x30303030u), hi) >> sh;
            let mw = select(hdr.z & 0x3F3F3F3Fu, ((hdr.w >> 4u) & 0x0F0F0F0Fu) | ((hdr.z >> 2u) & 0x30303030u), hi) >> sh;
            let m4 = vec4<u32>(0x0F0F0F0Fu);
            let dm = unpack2x16float(hdr.x);
            let sc = vec2<f32>(f32(scw & 0xFFu), f32((scw >> 8u) & 0xFFu));
            let mn = vec2<f32>(f32(mw & 0xFFu), f32((mw >> 8u) & 0xFFu));
//#if FEW
            let q0 = qa & m4;
            let q1 = qb & m4;
            let q2 = (qa >> vec4<u32>(4u)) & m4;
            let q3 = (qb >> vec4<u32>(4u)) & m4;
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
                    let d0 = xq[tt][0].d * f32(idot16(q0, xq[tt][0].q)) + xq[tt][1].d * f32(idot16(q1, xq[tt][1].q));
                    let d1 = xq[tt][2].d * f32(idot16(q2, xq[tt][2].q)) + xq[tt][3].d * f32(idot16(q3, xq[tt][3].q));
//#else
                    let d0 = dot(c0, xs[tt][0]) + dot(c1, xs[tt][1]) + dot(c2, xs[tt][2]) + dot(c3, xs[tt][3]) +
                        dot(c4, xs[tt][4]) + dot(c5, xs[tt][5]) + dot(c6, xs[tt][6]) + dot(c7, xs[tt][7]);
                    let d1 = dot(c8, xs[tt][8]) + dot(c9, xs[tt][9]) + dot(c10, xs[tt][10]) + dot(c11, xs[tt][11]) +
                        dot(c12, xs[tt][12]) + dot(c13, xs[tt][13]) + dot(c14, xs[tt][14]) + dot(c15, xs[tt][15]);
//#endif
                    acc[tt][r] += dm.x * dot(sc, vec2<f32>(d0, d1)) - dm.y * dot(mn, sx[tt]);
                }
            }
//#else
//#if INT8
            let d0 = xq0.d * f32(idot16(qa & m4, xq0.q)) + xq1.d * f32(idot16(qb & m4, xq1.q));
            let d1 = xq2.d * f32(idot16((qa >> vec4<u32>(4u)) & m4, xq2.q)) +
                xq3.d * f32(idot16((qb >> vec4<u32>(4u)) & m4, xq3.q));
//#else
            let d0 = dot_u8x16(qa & m4, xs[0], xs[1], xs[2], xs[3]) + dot_u8x16(qb & m4, xs[4], xs[5], xs[6], xs[7]);
            let d1 = dot_u8x16((qa >> vec4<u32>(4u)) & m4, xs[8], xs[9], xs[10], xs[11]) +
                dot_u8x16((qb >> vec4<u32>(4u)) & m4, xs[12], xs[13], xs[14], xs[15]);
//#endif
            acc[0][r] += dm.x * (sc.x * d0 + sc.y * d1) - dm.y * (mn.x * sx0 + mn.y * sx1);
//#endif
        }
    }
    finish_rows(acc, id);
}
