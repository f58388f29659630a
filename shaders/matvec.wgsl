// matvec.wgsl: decode mat-vec with fused dequantization for F32, F16 and Q8_0 weights (the K-quants have
// their own kernels, matvec_q4_k.wgsl and matvec_q6_k.wgsl), y[t][out_off + r] = sum_k W[r][k] * x[t][k]
// with the fused stores of matvec_io.wgsl (ACCUM, GLU, ROPE).
//
// Bindings: matvec_io.wgsl, and
//   2 w  storage read  array<u32>  weight rows (M rows of row_bytes, raw GGUF blocks of type WTYPE)
// Workgroup: WG threads computing ROWS consecutive rows for NT tokens (matvec_io.wgsl). The threads
// stride over K four elements at a time: each x vec4 of the NT tokens is loaded once and used for all
// ROWS rows, each weight vec4 dequantized once and used for all NT tokens; partial sums are combined by
// reduce_rows (subgroupAdd when SUBGROUPS, a shared-memory tree otherwise).
// Dispatch: grid (see common.wgsl) of ceil(M/ROWS) workgroups along x/y, ceil(T/NT) along z.
// Requires K % 4 == 0 and x_stride % 4 == 0.

//#include "matvec_io.wgsl"

//#include "weights.wgsl"

//#include "dq_{{WTYPE}}.wgsl"

@compute @workgroup_size({{WG}})
fn main(id: MatIds) {
    let rows = row_indices(first_row(id));
    let t0 = first_token(id);
    let nt = token_count(id);
    var acc: array<array<f32, {{ROWS}}>, {{NT}}>;
    for (var k = id.lid * 4u; k < P.k; k += {{WG}}u * 4u) {
        var xv: array<vec4<f32>, {{NT}}>;
        // Constant trip counts, so that the compiler unrolls the loops and keeps xv and acc in registers.
        for (var tt = 0u; tt < {{NT}}u; tt++) {
            if (tt < nt) {
                xv[tt] = xvec(t0 + tt, k >> 2u);
            }
        }
        for (var r = 0u; r < {{ROWS}}u; r++) {
            let wv = dq4(rows[r] * P.row_bytes, k);
            for (var tt = 0u; tt < {{NT}}u; tt++) {
                acc[tt][r] += dot(wv, xv[tt]); // tokens past nt add zeros
            }
        }
    }
    finish_rows(acc, id);
}
