// matmul.wgsl: prefill mat-mat with register tiles over weight tiles dequantized once into workgroup
// memory, y[t][out_off + r] = sum_k W[r][k] * x[t][k] for t < S.n_tok (with ACCUM: += , the residual add
// fused into the product that feeds it; with GLU: y = silu(y) * product, SwiGLU finished on the gate
// projection y holds; with ROPE: the outputs are query or key heads, rotated before they are stored, see
// rope_pair.wgsl).
//
// Bindings: identical to matvec.wgsl (0 P MatParams, 1 S Step, 2 w raw weights, declared by the tile
// file, 3 x activations as vec4, 4 y outputs, 5 cs with ROPE), so one bind group serves both kernels.
//
// Defines (the variant knobs a tuner may choose among): TM rows x TN tokens per workgroup, RM rows x RN
// tokens per thread (multiples of 4 that divide TM and TN), so (TM/RM)*(TN/RN) threads; TILE the weight
// tile, mm_tile_{TILE}.wgsl (q4_k, q6_k, or dq4 for any type with a dq_{WTYPE}.wgsl), which sets the
// tile's depth TK and dequantizes weights into it through put_w; F16 keeps both tiles as half-precision
// pairs packed in u32s (pack2x16float: core WGSL, no shader-f16 needed); products and sums stay f32.
//
// Per step of TK along K: the tile file's fill_w dequantizes the weight tile into workgroup memory
// (TK x TM, [k][row / 4] as vec4 of 4 rows; with F16 [k / 2][row / 4], each u32 the (k, k+1) pair of a
// row), each weight once per workgroup, and fill_x copies the activation tile (TK x TN, [k][token / 4],
// with F16 pairs likewise) beside it, transposed; then per k each thread takes RM/4 vec4s of weights and
// RN/4 vec4s of activations and does RM*RN multiply-adds into its register tile. Rows past M re-read
// the chunk's last row and are not stored; tokens past n_tok and K past the end (only F32/F16 rows may
// end mid-tile) read zeros. A thread whose register tile holds only tokens past n_tok skips the
// multiply-adds: a step of 16 tokens in 64-token tiles costs a quarter of the arithmetic of a full one
// (the threads of a token column are neighbours, lid % (TM/RM) the row, so they skip together).
// Why F16 pairs: where the adapter pays per 32-bit word moved through workgroup memory (lavapipe
// loads and stores each word of each thread one at a time), a pair halves the words per multiply-add.
// Dispatch: grid (see common.wgsl) of ceil(M/TM) workgroups along x/y, ceil(T/TN) along z.

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
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
//#if ROPE
@group(0) @binding(5) var<storage, read> cs: array<vec2<f32>>;
//#include "rope_pair.wgsl"
//#endif
//#if GLU
//#include "silu.wgsl"
//#endif

const TM = {{TM}}u;
const TN = {{TN}}u;
const RM = {{RM}}u;
const RN = {{RN}}u;
const NT = (TM / RM) * (TN / RN); // threads per workgroup
const TM4 = TM / 4u;
const TN4 = TN / 4u;
const RM4 = RM / 4u;
const RN4 = RN / 4u;

//#if F16
var<workgroup> wt: array<vec4<u32>, TK / 2u * TM4>; // [k / 2][row / 4]
var<workgroup> xt: array<vec4<u32>, TK / 2u * TN4>; // [k / 2][token / 4]
//#else
var<workgroup> wt: array<vec4<f32>, TK * TM4>; // [k][row / 4]
var<workgroup> xt: array<vec4<f32>, TK * TN4>; // [k][token / 4]
//#endif

//#include "mm_tile_{{TILE}}.wgsl"

// put_w stores weights k .. k+3 (k a multiple of 4) of tile row r.
fn put_w(k: u32, r: u32, v: vec4<f32>) {
//#if F16
    let i = (k >> 1u) * TM4 + (r >> 2u);
    wt[i][r & 3u] = pack2x16float(v.xy);
    wt[i + TM4][r & 3u] = pack2x16float(v.zw);
//#else
    for (var c = 0u; c < 4u; c++) {
        wt[(k + c) * TM4 + (r >> 2u)][r & 3u] = v[c];
    }
//#endif
}

// fill_x copies activations k0..k0+TK-1 of tokens tok0..tok0+TN-1 into xt, transposed: a unit is 4
// tokens x 4 k, four vec4 loads in, four vec4 stores out.
fn fill_x(tok0: u32, k0: u32, lid: u32) {
    let xs4 = P.x_stride >> 2u;
    for (var u = lid; u < TN4 * (TK / 4u); u += NT) {
        let t4 = u % TN4;
        let k4 = u / TN4;
        var v: array<vec4<f32>, 4>;
        for (var c = 0u; c < 4u; c++) {
            let t = tok0 + 4u * t4 + c;
            if (t < S.n_tok && k0 + 4u * k4 < P.k) {
                v[c] = x[t * xs4 + (k0 >> 2u) + k4];
            }
        }
//#if F16
        for (var e = 0u; e < 2u; e++) {
            xt[(2u * k4 + e) * TN4 + t4] = vec4<u32>(pack2x16float(vec2<f32>(v[0][2u * e], v[0][2u * e + 1u])),
                pack2x16float(vec2<f32>(v[1][2u * e], v[1][2u * e + 1u])),
                pack2x16float(vec2<f32>(v[2][2u * e], v[2][2u * e + 1u])),
                pack2x16float(vec2<f32>(v[3][2u * e], v[3][2u * e + 1u])));
        }
//#else
        for (var e = 0u; e < 4u; e++) {
            xt[(4u * k4 + e) * TN4 + t4] = vec4<f32>(v[0][e], v[1][e], v[2][e], v[3][e]);
        }
//#endif
    }
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = (wid.x + wid.y * GRID_X) * TM;
    let tok0 = wid.z * TN;
    let tr = lid % (TM / RM); // rows tr*RM ..
    let tc = lid / (TM / RM); // tokens tc*RN ..
    // acc[j * RM4 + i] holds token tc*RN + j, rows tr*RM + 4i .. 4i+3.
    var acc: array<vec4<f32>, RM4 * RN>;
    // A thread whose tokens all lie past n_tok (a step of fewer tokens than the tile) skips the
    // multiply-adds; it still fills the tiles and meets the barriers.
    let live = tok0 + tc * RN < S.n_tok;
    for (var k0 = 0u; k0 < P.k; k0 += TK) {
        fill_w(row0, k0, lid);
        fill_x(tok0, k0, lid);
        workgroupBarrier();
        if (live) {
//#if F16
            for (var kp = 0u; kp < TK / 2u; kp++) {
                // a[e * RM4 + i]: rows tr*RM + 4i .. 4i+3 at k = 2kp + e.
                var a: array<vec4<f32>, 2u * RM4>;
                for (var i = 0u; i < RM4; i++) {
                    let p = wt[kp * TM4 + tr * RM4 + i];
                    let r0 = unpack2x16float(p.x);
                    let r1 = unpack2x16float(p.y);
                    let r2 = unpack2x16float(p.z);
                    let r3 = unpack2x16float(p.w);
                    a[i] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
                    a[RM4 + i] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
                }
                for (var j4 = 0u; j4 < RN4; j4++) {
                    let p = xt[kp * TN4 + tc * RN4 + j4];
                    let t0 = unpack2x16float(p.x);
                    let t1 = unpack2x16float(p.y);
                    let t2 = unpack2x16float(p.z);
                    let t3 = unpack2x16float(p.w);
                    for (var i = 0u; i < RM4; i++) {
                        let j = 4u * j4 * RM4 + i;
                        acc[j] += a[i] * t0.x + a[RM4 + i] * t0.y;
                        acc[j + RM4] += a[i] * t1.x + a[RM4 + i] * t1.y;
                        acc[j + 2u * RM4] += a[i] * t2.x + a[RM4 + i] * t2.y;
                        acc[j + 3u * RM4] += a[i] * t3.x + a[RM4 + i] * t3.y;
                    }
                }
            }
//#else
            for (var kk = 0u; kk < TK; kk++) {
                var a: array<vec4<f32>, RM4>;
                for (var i = 0u; i < RM4; i++) {
                    a[i] = wt[kk * TM4 + tr * RM4 + i];
                }
                for (var j4 = 0u; j4 < RN4; j4++) {
                    let b = xt[kk * TN4 + tc * RN4 + j4];
                    for (var i = 0u; i < RM4; i++) {
                        let j = 4u * j4 * RM4 + i;
                        acc[j] += a[i] * b.x;
                        acc[j + RM4] += a[i] * b.y;
                        acc[j + 2u * RM4] += a[i] * b.z;
                        acc[j + 3u * RM4] += a[i] * b.w;
                    }
                }
            }
//#endif
        }
        workgroupBarrier();
    }
    for (var j = 0u; j < RN; j++) {
        let t = tok0 + tc * RN + j;
        if (t >= S.n_tok) {
            break;
        }
        for (var i = 0u; i < RM4; i++) {
            let a = acc[j * RM4 + i];
            for (var c = 0u; c < 4u; c++) {
                let r = row0 + tr * RM + 4u * i + c;
                if (r >= P.m) {
                    break;
                }
                let o = t * P.y_stride + P.out_off + r;
//#if ROPE
                // Rows 4i+c of one vec4 hold two (even, odd) pairs: row0 and RM are multiples of 4.
                let v = rope_pair(a[c & ~1u], a[c | 1u], (c & 1u) == 1u, t, P.out_off + r);
//#else
                let v = a[c];
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
