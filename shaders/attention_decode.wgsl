// attention_decode.wgsl: the new token's row of one layer's KV cache stored, and its attention (decode,
// T = 1) over the cache, split over the cache (flash-decoding). attention.wgsl gives each query head one
// workgroup that walks the whole cache alone: 16 workgroups for SmolLM3 whatever the context. Here each
// workgroup takes one chunk of CH cached positions for GW query heads that share a kv head, and writes a
// partial softmax (max m, sum l, unnormalized Σ p·v) per head; combine merges a head's partials with
// log-sum-exp rescaling:
//   M = max m_c,   out = Σ exp(m_c - M) o_c / Σ exp(m_c - M) l_c
// The token at cache position S.pos0 attends to rows 0 ..= S.pos0; query head h reads kv head
// h / (n_heads / n_kv_heads). Sharing a workgroup between the GW heads of one kv head reads each key and
// value pair once for all of them (GW lanes of a vec4; GW <= 4 divides the group size).
//
// The kv store is folded in (kv_store.wgsl does it for prefill), one dispatch fewer per layer: row S.pos0
// is read by the last chunk's workgroups only, so they take the new key and value from k and v (rounded
// as the cache rounds them, so the result is the one a separate store would give) and the first of them
// per kv head writes the row. No other workgroup reads or writes it.
//
// Bindings (group 0), shared by both entry points:
//   0 P     uniform  AttnParams
//   1 S     uniform  Step
//   2 q     storage read        array<f32>  the token's queries, head h at h*HD
//   3 kc    storage read_write  key cache, row p kv head g at p*kv_dim + g*HD (f32, or packed f16 with KV_F16)
//   4 vc    storage read_write  value cache, same layout
//   5 part  storage read_write  array<f32>  partial of chunk c, head h at (c*n_heads + h)*(HD + 2):
//                                           Σ p·v (HD), then m, then l
//   6 out   storage read_write  array<f32>  head h at h*HD
//   7 k     storage read        array<f32>  the token's keys, kv head g at g*HD
//   8 v     storage read        array<f32>  the token's values, same layout
// partial: 64 threads per (GW heads, chunk of CH = 64 positions): each scores one key for the GW heads,
//          then owns the output dim pairs (2d, 2d+1) for d = lid, lid+64, ... Dispatch: (n_heads/GW, chunks, 1).
// combine: 64 threads per head, each owning dim pairs as above; no barriers. Dispatch: (n_heads, 1, 1).
// HD (head_dim, even) and GW are defines; KV_ACCESS (attention_io.wgsl) is read_write.

//#include "common.wgsl"
//#include "attention_io.wgsl"

@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> knew: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read> vnew: array<vec2<f32>>;

const WG = 64u;
const CH = 64u; // positions per chunk: one key per thread, so a chunk needs no online rescaling
const HD = {{HD}}u;
const GW = {{GW}}u;
const DPT = (HD / 2u + WG - 1u) / WG;
const PS = HD + 2u; // floats per partial
const LOWEST = -3.0e38;

var<workgroup> qs: array<vec4<f32>, HD>; // lane i: head h0 + i; lanes >= GW hold zeros
var<workgroup> red: array<vec4<f32>, WG>;
var<workgroup> pt: array<vec4<f32>, CH>;
var<workgroup> kn: array<vec2<f32>, HD / 2u>; // the new row's key and value pairs, as the cache holds them
var<workgroup> vn: array<vec2<f32>, HD / 2u>;

// new_pair keeps pair d of the new row's key and value as the cache holds them, and when store writes
// them to the caches at pair index at.
fn new_pair(d: u32, at: u32, kk: vec2<f32>, vv: vec2<f32>, store: bool) {
//#if KV_F16
    let pk = pack2x16float(kk);
    let pv = pack2x16float(vv);
    kn[d] = unpack2x16float(pk);
    vn[d] = unpack2x16float(pv);
    if (store) {
        kc[at] = pk;
        vc[at] = pv;
    }
//#else
    kn[d] = kk;
    vn[d] = vv;
    if (store) {
        kc[at] = kk;
        vc[at] = vv;
    }
//#endif
}

@compute @workgroup_size(64)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h0 = wid.x * GW;
    let c = wid.y;
    let g = h0 / (P.n_heads / P.n_kv_heads);
    let n = S.pos0 + 1u;
    let last = c == S.pos0 / CH;
    if (last) {
        // Of the workgroups of this kv head, the one with its first query heads stores the row.
        let store = h0 % (P.n_heads / P.n_kv_heads) == 0u;
        let row = (S.pos0 * P.kv_dim + g * HD) / 2u;
        for (var d = lid; d < HD / 2u; d += WG) {
            new_pair(d, row + d, knew[g * HD / 2u + d], vnew[g * HD / 2u + d], store);
        }
    }
    for (var d = lid; d < HD; d += WG) {
        var v = vec4<f32>(0.0);
        for (var i = 0u; i < GW; i++) {
            v[i] = q[(h0 + i) * HD + d];
        }
        qs[d] = v;
    }
    workgroupBarrier();

    let j = c * CH + lid;
    var s = vec4<f32>(LOWEST);
    if (j < S.pos0) {
        let kb = (j * P.kv_dim + g * HD) / 2u;
        var acc = vec4<f32>(0.0);
        for (var d = 0u; d < HD / 2u; d++) {
            let kp = kpair(kb + d);
            acc += qs[2u * d] * kp.x + qs[2u * d + 1u] * kp.y;
        }
        s = acc * P.scale;
    } else if (j == S.pos0) {
        var acc = vec4<f32>(0.0);
        for (var d = 0u; d < HD / 2u; d++) {
            let kp = kn[d];
            acc += qs[2u * d] * kp.x + qs[2u * d + 1u] * kp.y;
        }
        s = acc * P.scale;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
        if (lid < st) {
            red[lid] = max(red[lid], red[lid + st]);
        }
        workgroupBarrier();
    }
    let m = red[0];
    var p = vec4<f32>(0.0);
    if (j < n) {
        p = exp(s - m);
    }
    pt[lid] = p;
    workgroupBarrier();

    let cnt = min(CH, n - c * CH);
    let from_cache = cnt - select(0u, 1u, last); // the last chunk's last row is the new one, in vn
    let vb = (c * CH * P.kv_dim + g * HD) / 2u;
    for (var i = 0u; i < DPT; i++) {
        let d = lid + i * WG;
        if (d < HD / 2u) {
            var ax = vec4<f32>(0.0);
            var ay = vec4<f32>(0.0);
            for (var jj = 0u; jj < from_cache; jj++) {
                let vp = vpair(vb + jj * (P.kv_dim / 2u) + d);
                let w = pt[jj];
                ax += w * vp.x;
                ay += w * vp.y;
            }
            if (last) {
                let vp = vn[d];
                let w = pt[cnt - 1u];
                ax += w * vp.x;
                ay += w * vp.y;
            }
            for (var k = 0u; k < GW; k++) {
                let at = (c * P.n_heads + h0 + k) * PS + 2u * d;
                part[at] = ax[k];
                part[at + 1u] = ay[k];
            }
        }
    }
    if (lid == 0u) {
        var l = vec4<f32>(0.0);
        for (var jj = 0u; jj < cnt; jj++) {
            l += pt[jj];
        }
        for (var k = 0u; k < GW; k++) {
            let at = (c * P.n_heads + h0 + k) * PS + HD;
            part[at] = m[k];
            part[at + 1u] = l[k];
        }
    }
}

@compute @workgroup_size(64)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let nc = (S.pos0 + CH) / CH; // chunks over pos0 + 1 positions
    var mx = LOWEST;
    for (var c = 0u; c < nc; c++) {
        mx = max(mx, part[(c * P.n_heads + h) * PS + HD]);
    }
    var l = 0.0;
    var o: array<vec2<f32>, DPT>;
    for (var c = 0u; c < nc; c++) {
        let base = (c * P.n_heads + h) * PS;
        let a = exp(part[base + HD] - mx);
        l += a * part[base + HD + 1u];
        for (var i = 0u; i < DPT; i++) {
            let d = lid + i * WG;
            if (d < HD / 2u) {
                o[i] += a * vec2<f32>(part[base + 2u * d], part[base + 2u * d + 1u]);
            }
        }
    }
    for (var i = 0u; i < DPT; i++) {
        let d = lid + i * WG;
        if (d < HD / 2u) {
            out[h * HD + 2u * d] = o[i].x / l;
            out[h * HD + 2u * d + 1u] = o[i].y / l;
        }
    }
}
