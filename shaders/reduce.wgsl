// reduce.wgsl: sums the per-thread partial values of ROWS rows for each of NT tokens over a workgroup of
// WG threads; the total of token t, row r ends up in red_out[t * ROWS + r] (threads lid, lid + WG, ...
// finish totals lid, lid + WG, ...: ROWS * NT may exceed WG). With SUBGROUPS each subgroup adds in
// registers (subgroupAdd) and one value per subgroup goes through workgroup memory, for all the tokens
// before one barrier: a WebGPU subgroup has 4 invocations at least, so a workgroup has at most WG/4 of
// them. (On lavapipe a barrier saves every live value of every thread, and a barrier per token with
// the other tokens' sums live cost more than the product itself.) Otherwise a shared-memory tree does
// the whole job, a token at a time. Every invocation of the workgroup must call reduce_rows (no early
// returns before it).

var<workgroup> red_out: array<f32, {{ROWS}} * {{NT}}>;

//#if SUBGROUPS
const SG_MAX = {{WG}}u / 4u; // subgroups a workgroup may have
var<workgroup> red: array<f32, {{ROWS}} * {{NT}} * ({{WG}} / 4)>;

fn reduce_rows(acc: array<array<f32, {{ROWS}}>, {{NT}}>, lid: u32, sg_lane: u32, sg_id: u32, n_sg: u32) {
    var a = acc;
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var r = 0u; r < {{ROWS}}u; r++) {
            let s = subgroupAdd(a[tt][r]);
            if (sg_lane == 0u) {
                red[(tt * {{ROWS}}u + r) * SG_MAX + sg_id] = s;
            }
        }
    }
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
