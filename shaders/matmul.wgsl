// matmul.wgsl: prefill mat-mat with dequantized tiles, y[t][out_off + r] = sum_k W[r][k] * x[t][k] for
// t < S.n_tok (with ACCUM: += , the residual add fused into the product that feeds it; with GLU:
// y = silu(y) * product, SwiGLU finished on the gate projection y holds; with ROPE: the outputs are
// query or key heads, rotated before they are stored, see rope_pair.wgsl).
//
// Bindings: identical to matvec.wgsl (0 P MatParams, 1 S Step, 2 w raw weights of type WTYPE,
// 3 x activations as vec4, 4 y outputs), so one bind group serves both kernels.
// Workgroup: 256 threads computing a tile of 64 rows x 32 tokens. Per step of 32 along K, the weight
// tile is dequantized into workgroup memory (each thread two vec4s) and the activation tile copied
// beside it (one vec4 each); every thread then accumulates 4 rows x 2 tokens. Rows past M re-read the
// last row and are not stored, tokens past n_tok read zeros, K past the end (only possible for F32/F16
// rows) reads zeros.
// Dispatch: grid (see common.wgsl) of ceil(M/64) workgroups along x/y, ceil(T/32) along z.

//#include "common.wgsl"

struct MatParams {
    k: u32,
    m: u32,
    row_bytes: u32,
    out_off: u32,
    x_stride: u32,
    y_stride: u32,
    head_dim: u32, // ROPE only
    rope_dim: u32, // ROPE only
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
//#if GLU
//#include "silu.wgsl"
//#endif

const TM = 64u;
const TN = 32u;
const TK = 32u;

var<workgroup> wt: array<f32, TK * TM>; // [k][row]
var<workgroup> xt: array<f32, TK * TN>; // [k][token]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = (wid.x + wid.y * GRID_X) * TM;
    let tok0 = wid.z * TN;
    let tr = lid & 15u;  // rows tr*4 .. tr*4+3
    let tc = lid >> 4u;  // tokens tc*2, tc*2+1
    var acc: array<f32, 8>;

    // Loader roles: weight vec4s (row lr, k offset lk) and (lr + 32, lk); activation vec4 (token lt, lk).
    let lr = lid >> 3u;
    let lk = (lid & 7u) * 4u;
    let rb0 = min(row0 + lr, P.m - 1u) * P.row_bytes;
    let rb1 = min(row0 + lr + 32u, P.m - 1u) * P.row_bytes;
    let xs4 = P.x_stride >> 2u;

    for (var k0 = 0u; k0 < P.k; k0 += TK) {
        let k = k0 + lk;
        var w0 = vec4<f32>(0.0);
        var w1 = vec4<f32>(0.0);
        var xv = vec4<f32>(0.0);
        if (k < P.k) {
            w0 = dq4(rb0, k);
            w1 = dq4(rb1, k);
            if (tok0 + lr < S.n_tok) {
                xv = x[(tok0 + lr) * xs4 + (k >> 2u)];
            }
        }
        for (var i = 0u; i < 4u; i++) {
            wt[(lk + i) * TM + lr] = w0[i];
            wt[(lk + i) * TM + lr + 32u] = w1[i];
            xt[(lk + i) * TN + lr] = xv[i];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = vec4<f32>(wt[kk * TM + tr * 4u], wt[kk * TM + tr * 4u + 1u], wt[kk * TM + tr * 4u + 2u], wt[kk * TM + tr * 4u + 3u]);
            let b0 = xt[kk * TN + tc * 2u];
            let b1 = xt[kk * TN + tc * 2u + 1u];
            for (var i = 0u; i < 4u; i++) {
                acc[i] += a[i] * b0;
                acc[4u + i] += a[i] * b1;
            }
        }
        workgroupBarrier();
    }
    for (var j = 0u; j < 2u; j++) {
        let t = tok0 + tc * 2u + j;
        if (t >= S.n_tok) {
            continue;
        }
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + tr * 4u + i;
            if (r < P.m) {
                let o = t * P.y_stride + P.out_off + r;
//#if ROPE
                // This thread's four rows are two (even, odd) pairs.
                let v = rope_pair(acc[j * 4u + (i & ~1u)], acc[j * 4u + (i | 1u)], (i & 1u) == 1u, t, P.out_off + r);
//#else
                let v = acc[j * 4u + i];
//#endif
//#if GLU
                y[o] = silu(y[o]) * v; // y holds the gate projection
//#else
//#if ACCUM
                y[o] += v;
//#else
                y[o] = v;
//#endif
//#endif
            }
        }
    }
}
