// matvec_io.wgsl: what the decode mat-vec kernels share (matvec.wgsl for F32/F16/Q8_0, matvec_q4_k.wgsl,
// matvec_q6_k.wgsl): the parameters, the activation and output bindings, the reduction, and the store
// with its fused variants. Each kernel declares the weight binding itself (2, w), since the K-quant
// kernels read it in wider words than array<u32>.
//
// Bindings (group 0):
//   0 P  uniform  MatParams (below)
//   1 S  uniform  Step (common.wgsl; unused here)
//   3 x  storage read        array<vec4<f32>> activations, token t at element t*x_stride; with XTEX a
//        texture_2d<u32> x_tex of rgba32uint texels holding the floats' bits, token t in row t (x_stride
//        unused). Kernels read either through xvec.
//   4 y  storage read_write  array<f32>  outputs, token t at element t*y_stride + out_off
//   5 cs storage read        array<vec2<f32>>  with ROPE only: (cos, sin) per token and pair
//
// Tokens: a workgroup takes NT consecutive tokens from wid.z * NT (NT = 1 for decode; 2 or 4 for a step
// of a few tokens, FEW, so each weight is loaded and unpacked once for all of them), stopping at
// S.n_tok. Its partial sums acc[t][r] are ROWS per token; finish_rows reduces them all (reduce.wgsl) and
// stores those of the tokens that exist.
//
// The store is y[t][out_off + r] = sum (with ACCUM: +=, the residual add fused into the product that
// feeds it; with GLU: y = silu(y) * sum, the up projection finishing SwiGLU on the gate projection that
// y holds; with ROPE: the outputs are query or key heads, rotated before they are stored, see
// rope_pair.wgsl).

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
//#if XTEX
@group(0) @binding(3) var x_tex: texture_2d<u32>;

// xvec returns activations 4c .. 4c + 3 of token t.
fn xvec(t: u32, c: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(textureLoad(x_tex, vec2<u32>(c, t), 0));
}
//#else
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;

// xvec returns activations 4c .. 4c + 3 of token t.
fn xvec(t: u32, c: u32) -> vec4<f32> {
    return x[t * (P.x_stride >> 2u) + c];
}
//#endif
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
//#if ROPE
@group(0) @binding(5) var<storage, read> cs: array<vec2<f32>>;
//#include "rope_pair.wgsl"
//#endif

//#include "reduce.wgsl"
//#if GLU
//#include "silu.wgsl"
//#endif

// MatIds are the entry point's builtins: the kernels take them as one struct so that the subgroup ones
// exist only in the SUBGROUPS variant.
struct MatIds {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
//#if SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
//#endif
}

// first_row is the chunk row of the workgroup's first output row.
fn first_row(id: MatIds) -> u32 {
    return (id.wid.x + id.wid.y * GRID_X) * {{ROWS}}u;
}

// row_indices lists the workgroup's ROWS rows from row0; rows past the chunk's end repeat its last row,
// so every invocation does the same work and reaches the reduction.
fn row_indices(row0: u32) -> array<u32, {{ROWS}}> {
    var rows: array<u32, {{ROWS}}>;
    for (var r = 0u; r < {{ROWS}}u; r++) {
        rows[r] = min(row0 + r, P.m - 1u);
    }
    return rows;
}

// first_token is the workgroup's first token.
fn first_token(id: MatIds) -> u32 {
    return id.wid.z * {{NT}}u;
}

// token_count is how many of the workgroup's NT tokens exist (uniform over the workgroup).
fn token_count(id: MatIds) -> u32 {
    return min({{NT}}u, S.n_tok - first_token(id));
}

// finish_rows sums each row's per-invocation partial sums acc (ROWS per token) over the workgroup and
// stores the rows of the workgroup's tokens (every invocation must call it). Every token's rows are
// reduced, those past the step's too (their sums are zeros): where branches are masks (lavapipe), a
// reduction in a branch costs as much as one outside it. A workgroup has its first token (dispatch), so
// that store needs no test. With LANE_STORE (reduce.wgsl) each lane stores the totals the butterfly left
// it; a ROPE row's partner (r ^ 1) is the lane's next or previous total (the host sets LANE_STORE only
// for an even number of rows a lane, ROWS a multiple of 16, or for one, ROWS = 8), or with one row a
// lane (PAIR_LANES) the neighbouring lane's.
fn finish_rows(acc: array<array<f32, {{ROWS}}>, {{NT}}>, id: MatIds) {
    let nt = token_count(id);
//#if LANE_STORE
    const K = {{ROWS}}u / 8u;
    let tot = butterfly8(acc, id.sg_lane);
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        for (var j = 0u; j < K; j++) {
//#if ROPE
//#if PAIR_LANES
            let other = subgroupShuffleXor(tot[tt][j], 1u);
//#else
            let other = tot[tt][j ^ 1u];
//#endif
//#else
            let other = 0.0;
//#endif
            if (tt == 0u || tt < nt) {
                store_row(first_token(id) + tt, first_row(id), id.sg_lane * K + j, tot[tt][j], other);
            }
        }
    }
//#else
//#if SUBGROUPS
    reduce_rows(acc, id.lid, id.sg_lane, id.sg_id, id.n_sg);
//#else
    reduce_rows(acc, id.lid, 0u, 0u, 0u);
//#endif
    for (var tt = 0u; tt < {{NT}}u; tt++) {
        if (tt == 0u || tt < nt) {
            store_rows(first_token(id) + tt, tt * {{ROWS}}u, first_row(id), id.lid);
        }
    }
//#endif
}

//#if LANE_STORE
//#else
// store_rows stores the ROWS totals that reduce_rows left in red_out from sums for token t, rows row0..
// of the chunk; invocation lid stores rows row0 + lid, row0 + lid + WG, ...
fn store_rows(t: u32, sums: u32, row0: u32, lid: u32) {
    for (var r0 = 0u; r0 < {{ROWS}}u; r0 += {{WG}}u) {
        let r = r0 + lid;
        if (r < {{ROWS}}u) {
//#if ROPE
            let other = red_out[sums + (r ^ 1u)];
//#else
            let other = 0.0;
//#endif
            store_row(t, row0, r, red_out[sums + r], other);
        }
    }
}
//#endif

// store_row stores v, the total of row row0 + r of token t, if that row exists (rows past the chunk's
// end are dropped); other is row (r ^ 1)'s, the partner a ROPE pair needs (rows come in (even, odd) pairs
// within a workgroup: ROWS is even).
fn store_row(t: u32, row0: u32, r: u32, v: f32, other: f32) {
    if (row0 + r >= P.m) {
        return;
    }
    let i = t * P.y_stride + P.out_off + row0 + r;
//#if ROPE
    let odd = (r & 1u) == 1u;
    let out = rope_pair(select(v, other, odd), select(other, v, odd), odd, t, P.out_off + row0 + r);
//#else
    let out = v;
//#endif
//#if GLU
    y[i] = silu(y[i]) * out; // y holds the gate projection: SwiGLU, stored for the down projection
//#else
//#if ACCUM
    y[i] += out;
//#else
    y[i] = out;
//#endif
//#endif
}
