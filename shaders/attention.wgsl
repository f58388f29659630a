// attention.wgsl: causal grouped-query attention of the new tokens over one layer's KV cache, for both
// decode (T = 1) and prefill. Query token t (cache position S.pos0 + t) of head h attends to cache rows
// 0 ..= S.pos0 + t of kv head h / (n_heads / n_kv_heads):
//   out = softmax(q . K^T * scale) V
// The softmax is computed online (running max m, running sum l, output rescaled when m grows), one tile
// of 64 keys at a time, so any context length fits in fixed workgroup memory and exp never overflows.
//
// Bindings (group 0):
//   0 P    uniform  AttnParams
//   1 S    uniform  Step
//   2 q    storage read        array<f32>  queries, token t head h at t*q_stride + h*HD
//   3 kc   storage read        key cache, row p kv head g at p*kv_dim + g*HD (f32, or packed f16 with KV_F16)
//   4 vc   storage read        value cache, same layout
//   5 out  storage read_write  array<f32>  token t head h at t*out_stride + h*HD
// Workgroup: 64 threads per (head, token): each scores one key of the tile, then owns the output dim
// pairs (2d, 2d+1) for d = lid, lid+64, ... (DPT of them). Dispatch: (n_heads, T, 1). HD (head_dim) is a define, even.

//#include "common.wgsl"
//#include "attention_io.wgsl"

@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG = 64u;
const HD = {{HD}}u;
const DPT = (HD / 2u + WG - 1u) / WG;

var<workgroup> qs: array<f32, HD>;
var<workgroup> red: array<f32, WG>;
var<workgroup> pt: array<f32, WG>;

fn tree(lid: u32, is_max: bool) -> f32 {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            if (is_max) {
                red[lid] = max(red[lid], red[lid + s]);
            } else {
                red[lid] += red[lid + s];
            }
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let g = h / (P.n_heads / P.n_kv_heads);
    let n = S.pos0 + t + 1u;
    for (var d = lid; d < HD; d += WG) {
        qs[d] = q[t * P.q_stride + h * HD + d];
    }
    workgroupBarrier();

    var m = -3.0e38;
    var l = 0.0;
    var o: array<vec2<f32>, DPT>;
    for (var j0 = 0u; j0 < n; j0 += WG) {
        let j = j0 + lid;
        var s = -3.0e38;
        if (j < n) {
            let kb = (j * P.kv_dim + g * HD) / 2u;
            var dotv = 0.0;
            for (var d = 0u; d < HD / 2u; d++) {
                let kp = kpair(kb + d);
                dotv += qs[2u * d] * kp.x + qs[2u * d + 1u] * kp.y;
            }
            s = dotv * P.scale;
        }
        red[lid] = s;
        let m_new = max(m, tree(lid, true));
        var p = 0.0;
        if (j < n) {
            p = exp(s - m_new);
        }
        pt[lid] = p;
        red[lid] = p;
        let lt = tree(lid, false);
        let alpha = exp(m - m_new);
        l = l * alpha + lt;
        m = m_new;
        let cnt = min(WG, n - j0);
        for (var i = 0u; i < DPT; i++) {
            let d = lid + i * WG;
            if (d < HD / 2u) {
                var acc = o[i] * alpha;
                for (var jj = 0u; jj < cnt; jj++) {
                    acc += pt[jj] * vpair(((j0 + jj) * P.kv_dim + g * HD) / 2u + d);
                }
                o[i] = acc;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < DPT; i++) {
        let d = lid + i * WG;
        if (d < HD / 2u) {
            let at = t * P.out_stride + h * HD + 2u * d;
            out[at] = o[i].x / l;
            out[at + 1u] = o[i].y / l;
        }
    }
}
