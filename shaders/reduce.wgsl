// reduce.wgsl: sums the per-thread partial values of ROWS rows for each of NT tokens over a workgroup of
// WG threads; the total of token t, row r ends up in red_out[t * ROWS + r] (threads lid, lid + WG, ...
// finish totals lid, lid + WG, ...: ROWS * NT may exceed WG). With SUBGROUPS each subgroup adds in
// registers and one value per subgroup goes through workgroup memory, for all the tokens before one
// barrier: a WebGPU subgroup has 4 invocations at least, so a workgroup has at most WG/4 of them. (On
// lavapipe a barrier saves every live value of every thread, and a barrier per token with the other
// tokens' sums live cost more than the product itself.) Otherwise a shared-memory tree does the whole
// job, a token at a time. Every invocation of the workgroup must call reduce_rows (no early returns
// before it).
//
// SG8 (subgroups of exactly 8 invocations, ROWS a multiple of 8; the host sets it only on CPU-type
// adapters whose probe, subgroup_size.wgsl, reported 8): the subgroup adds by a butterfly of shuffles
// instead of a subgroupAdd per sum. Mesa's lavapipe compiles subgroupAdd as a loop over the lanes (it
// must honour the execution mask), ROWS * NT of them per workgroup, but a shuffle as one permute of a
// SIMD register. Write row r = ((b2 * 2 + b1) * 2 + b0) * K + j with K = ROWS / 8: the first level
// pairs lanes l and l ^ 4, and each keeps the half of the rows its bit 2 names (b2 = that bit), adding
// the partner's sums of them; the next levels do the same with bits 1 and 0. Lane l ends with the
// subgroup's totals of rows l * K .. l * K + K - 1, for every token: 7 * K * NT shuffles in place of
// 8 * K * NT reductions. (The arrays are indexed by loop counters over their own lengths, which is what
// makes Mesa unroll the loops and keep them in registers.)
//
// LANE_STORE (SG8 with WG = 8: the workgroup is one subgroup, as the K-quant mat-vecs of rows of up to
// 512 elements are on lavapipe; the host sets it for ROWS = 8 or a multiple of 16, where a RoPE pair's
// rows are on one lane or two neighbours): the butterfly's totals are final, and the caller stores them from the
// lanes that hold them (butterfly8; matvec_io.wgsl's finish_rows) instead of passing them through
// workgroup memory between two barriers. There reduce_rows and its workgroup memory do not exist.

//#if SUBGROUPS
//#if SG8
// butterfly8 adds acc over the subgroup of 8 by the butterfly above; lane sg_lane gets the totals of rows
// sg_lane * K + j, j < K, for each token.
fn butterfly8(acc: array<array<f32, {{ROWS}}>, {{NT}}>, sg_lane: u32) -> array<array<f32, {{ROWS}} / 8>, {{NT}}> {
    var a = acc;
    const K = {{ROWS}}u / 8u;
    let up4 = (sg_lane & 4u) != 0u;
    var s4: array<array<array<array<f32, {{ROWS}} / 8>, 2>, 2>, {{NT}}>; // [t][b1][b0][j]
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var b1 = 0u; b1 < 2u; b1++) {
            for (var b0 = 0u; b0 < 2u; b0++) {
                for (var j = 0u; j < K; j++) {
                    let lo = a[tt][(b1 * 2u + b0) * K + j];
                    let hi = a[tt][((2u + b1) * 2u + b0) * K + j];
                    s4[tt][b1][b0][j] = select(lo, hi, up4) + subgroupShuffleXor(select(hi, lo, up4), 4u);
                }
            }
        }
    }
    let up2 = (sg_lane & 2u) != 0u;
    var s2: array<array<array<f32, {{ROWS}} / 8>, 2>, {{NT}}>; // [t][b0][j]
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var b0 = 0u; b0 < 2u; b0++) {
            for (var j = 0u; j < K; j++) {
                let lo = s4[tt][0][b0][j];
                let hi = s4[tt][1][b0][j];
                s2[tt][b0][j] = select(lo, hi, up2) + subgroupShuffleXor(select(hi, lo, up2), 2u);
            }
        }
    }
    let up1 = (sg_lane & 1u) != 0u;
    var s1: array<array<f32, {{ROWS}} / 8>, {{NT}}>;
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var j = 0u; j < K; j++) {
            let lo = s2[tt][0][j];
            let hi = s2[tt][1][j];
            s1[tt][j] = select(lo, hi, up1) + subgroupShuffleXor(select(hi, lo, up1), 1u);
        }
    }
    return s1;
}
//#endif
//#endif

//#if LANE_STORE
//#else
var<workgroup> red_out: array<f32, {{ROWS}} * {{NT}}>;

//#if SUBGROUPS
const SG_MAX = {{WG}}u / 4u; // subgroups a workgroup may have
var<workgroup> red: array<f32, {{ROWS}} * {{NT}} * ({{WG}} / 4)>;

fn reduce_rows(acc: array<array<f32, {{ROWS}}>, {{NT}}>, lid: u32, sg_lane: u32, sg_id: u32, n_sg: u32) {
//#if SG8
    const K = {{ROWS}}u / 8u;
    let s1 = butterfly8(acc, sg_lane);
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var j = 0u; j < K; j++) {
            red[(tt * {{ROWS}}u + sg_lane * K + j) * SG_MAX + sg_id] = s1[tt][j];
        }
    }
//#else
    var a = acc;
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var r = 0u; r < {{ROWS}}u; r++) {
            let s = subgroupAdd(a[tt][r]);
            if (sg_lane == 0u) {
                red[(tt * {{ROWS}}u + r) * SG_MAX + sg_id] = s;
            }
        }
    }
//#endif
    workgroupBarrier();
    for (var i0 = 0u; i0 < {{ROWS}}u * {{NT}}u; i0 += {{WG}}u) {
        let i = i0 + lid;
        if (i < {{ROWS}}u * {{NT}}u) {
            var t = 0.0;
            for (var j = 0u; j < n_sg; j++) {
                t += red[i * SG_MAX + j];
            }
            red_out[i] = t;
        }
    }
    workgroupBarrier();
}
//#else
var<workgroup> red: array<f32, {{ROWS}} * {{WG}}>;

fn reduce_rows(acc: array<array<f32, {{ROWS}}>, {{NT}}>, lid: u32, sg_lane: u32, sg_id: u32, n_sg: u32) {
    var a = acc;
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var r = 0u; r < {{ROWS}}u; r++) {
            red[r * {{WG}}u + lid] = a[tt][r];
        }
        workgroupBarrier();
        for (var s = {{WG}}u / 2u; s > 0u; s >>= 1u) {
            if (lid < s) {
                for (var r = 0u; r < {{ROWS}}u; r++) {
                    red[r * {{WG}}u + lid] += red[r * {{WG}}u + lid + s];
                }
            }
            workgroupBarrier();
        }
        for (var r0 = 0u; r0 < {{ROWS}}u; r0 += {{WG}}u) {
            let r = r0 + lid;
            if (r < {{ROWS}}u) {
                red_out[tt * {{ROWS}}u + r] = red[r * {{WG}}u];
            }
        }
        workgroupBarrier();
    }
}
//#endif
//#endif
