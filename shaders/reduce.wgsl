// reduce.wgsl: sums ROWS per-thread partial values over a workgroup of WG threads; the total of row r
// ends up in red_out[r] (threads lid, lid + WG, ... of the workgroup finish rows lid, lid + WG, ...: ROWS
// may exceed WG). With SUBGROUPS each subgroup adds in registers (subgroupAdd) and one value per
// subgroup goes through workgroup memory; otherwise a shared-memory tree does the whole job. Every
// invocation of the workgroup must call reduce_rows (no early returns before it).

var<workgroup> red: array<f32, {{ROWS}} * {{WG}}>;
var<workgroup> red_out: array<f32, {{ROWS}}>;

//#if SUBGROUPS
fn reduce_rows(acc: array<f32, {{ROWS}}>, lid: u32, sg_lane: u32, sg_id: u32, n_sg: u32) {
    var a = acc;
    for (var r = 0u; r < {{ROWS}}u; r++) {
        let s = subgroupAdd(a[r]);
        if (sg_lane == 0u) {
            red[r * {{WG}}u + sg_id] = s;
        }
    }
    workgroupBarrier();
    for (var r0 = 0u; r0 < {{ROWS}}u; r0 += {{WG}}u) {
        let r = r0 + lid;
        if (r < {{ROWS}}u) {
            var t = 0.0;
            for (var i = 0u; i < n_sg; i++) {
                t += red[r * {{WG}}u + i];
            }
            red_out[r] = t;
        }
    }
    workgroupBarrier();
}
//#else
fn reduce_rows(acc: array<f32, {{ROWS}}>, lid: u32, sg_lane: u32, sg_id: u32, n_sg: u32) {
    var a = acc;
    for (var r = 0u; r < {{ROWS}}u; r++) {
        red[r * {{WG}}u + lid] = a[r];
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
            red_out[r] = red[r * {{WG}}u];
        }
    }
    workgroupBarrier();
}
//#endif
