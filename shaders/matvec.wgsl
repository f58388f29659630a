// matvec.wgsl: decode mat-vec with fused dequantization, y[t][out_off + r] = sum_k W[r][k] * x[t][k]
// (with ACCUM: y[t][out_off + r] += ..., the residual add fused into the product that feeds it; with
// GLU: y = silu(y) * (W x), the up projection finishing SwiGLU on the gate projection that y holds;
// with ROPE: the outputs are query or key heads, rotated before they are stored, see rope_pair.wgsl).
//
// Bindings (group 0):
//   0 P  uniform  MatParams (below)
//   1 S  uniform  Step (common.wgsl; unused here)
//   2 w  storage read        array<u32>  weight rows (M rows of row_bytes, raw GGUF blocks of type WTYPE)
//   3 x  storage read        array<vec4<f32>> activations, token t at element t*x_stride
//   4 y  storage read_write  array<f32>  outputs, token t at element t*y_stride + out_off
//   5 cs storage read        array<vec2<f32>>  with ROPE only: (cos, sin) per token and pair
// Workgroup: WG threads computing ROWS consecutive rows for one token. The threads stride over K four
// elements at a time, so each x vec4 is loaded once and used for all ROWS rows; partial sums are combined
// by reduce_rows (subgroupAdd when SUBGROUPS, a shared-memory tree otherwise).
// Dispatch: grid (see common.wgsl) of ceil(M/ROWS) workgroups along x/y, T along z.
// Requires K % 4 == 0 and x_stride % 4 == 0.

//#include "common.wgsl"

struct MatParams {
    k: u32,         // elements per row
    m: u32,         // rows of this weight chunk
    row_bytes: u32, // bytes per row
    out_off: u32,   // output element of row 0 of the chunk
    x_stride: u32,  // x elements per token
    y_stride: u32,  // y elements per token
    head_dim: u32,  // ROPE only: elements per head
    rope_dim: u32,  // ROPE only: rotated elements per head (even)
}

@group(0) @binding(0) var<uniform> P: MatParams;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
//#if ROPE
@group(0) @binding(5) var<storage, read> cs: array<vec2<f32>>;
//#include "rope_pair.wgsl"
//#endif

//#include "dq_{{WTYPE}}.wgsl"
//#include "reduce.wgsl"
//#if GLU
//#include "silu.wgsl"
//#endif

@compute @workgroup_size({{WG}})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32
//#if SUBGROUPS
    , @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_id) sg_id: u32, @builtin(num_subgroups) n_sg: u32
//#endif
) {
//#if SUBGROUPS
//#else
    let sg_lane = 0u;
    let sg_id = 0u;
    let n_sg = 0u;
//#endif
    let t = wid.z;
    let row0 = (wid.x + wid.y * GRID_X) * {{ROWS}}u;
    let xb = t * (P.x_stride >> 2u);
    // Rows past the end recompute the last row so every invocation reaches the reduction.
    var rb: array<u32, {{ROWS}}>;
    for (var r = 0u; r < {{ROWS}}u; r++) {
        rb[r] = min(row0 + r, P.m - 1u) * P.row_bytes;
    }
    var acc: array<f32, {{ROWS}}>;
    for (var k = lid * 4u; k < P.k; k += {{WG}}u * 4u) {
        let xv = x[xb + (k >> 2u)];
        for (var r = 0u; r < {{ROWS}}u; r++) {
            acc[r] += dot(dq4(rb[r], k), xv);
        }
    }
    reduce_rows(acc, lid, sg_lane, sg_id, n_sg);
    if (lid < {{ROWS}}u && row0 + lid < P.m) {
        let i = t * P.y_stride + P.out_off + row0 + lid;
//#if ROPE
        // Rows come in (even, odd) pairs within the workgroup, so the partner's sum is in red_out.
        let v = rope_pair(red_out[lid & ~1u], red_out[lid | 1u], (lid & 1u) == 1u, t, P.out_off + row0 + lid);
//#else
        let v = red_out[lid];
//#endif
//#if GLU
        y[i] = silu(y[i]) * v; // y holds the gate projection: SwiGLU, stored for the down projection
//#else
//#if ACCUM
        y[i] += v;
//#else
        y[i] = v;
//#endif
//#endif
    }
}
