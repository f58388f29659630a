// attention_decode.wgsl: the new row of each of a submit's decode sequences (one row each) stored in
// one layer's paged KV cache (attention_io.wgsl), and its attention over the cache split into chunks
// (flash-decoding): attention.wgsl gives each block of query rows one workgroup that walks the whole
// cache alone, 4 workgroups a sequence for SmolLM3 whatever the context. Here each workgroup takes one
// chunk of CH cached positions of one sequence for GW query heads that share a kv head, and writes a
// partial softmax (max m, sum l, unnormalized Σ p·v) per head; attention_combine.wgsl merges a head's
// partials with log-sum-exp rescaling:
//   M = max m_c,   out = Σ exp(m_c - M) o_c / Σ exp(m_c - M) l_c
// A sequence's row at position pos0 attends to its positions 0 ..= pos0; query head h reads kv head
// h / (n_heads / n_kv_heads). Sharing a workgroup between the GW heads of one kv head reads each key and
// value pair once for all of them (GW lanes of a vec4; GW <= 4 divides the group size). CH divides the
// block length BL, so a chunk's positions are consecutive rows of one block.
//
// The kv store is folded in, one dispatch fewer per layer in a decode step (kv_store.wgsl runs only in
// steps with prompt rows, and then has stored these rows too, the same values): position pos0 is read
// by its sequence's last chunk's workgroups only, so they take the new key and value from knew and vnew
// (rounded as the cache rounds them, so the result is the one a separate store would give) and the
// first of them per kv head writes the row. No other workgroup reads or writes it.
//
// Bindings (group 0):
//   0 P       uniform  AttnParams (attention_io.wgsl)
//   1 S       uniform  Step
//   2 q       storage read        array<f32>  queries, row t head h at t*q_stride + h*HD
//   3 kc      storage read_write  key cache, paged
//   4 vc      storage read_write  value cache, same layout
//   5 part    storage read_write  array<f32>  partial of sequence z, chunk c, head h at
//                                             ((z*max_chunks + c)*n_heads + h)*(HD + 2): Σ p·v (HD), then m, then l
//   6 segs    storage read        the sequences (n_tok = 1), one per workgroup_id.z
//   7 tables  storage read        their block tables
//   8 knew    storage read        array<vec2<f32>>  the step's new keys, row t kv head g at (t*new_stride + g*HD)/2
//   9 vnew    storage read        the step's new values, same layout
// 64 threads per (GW heads, chunk of CH = 64 positions, sequence): each scores one key for the GW
// heads, then owns the output dim pairs (2d, 2d+1) for d = lid, lid+64, ...
// Dispatch: (n_heads/GW, chunks of the longest sequence, sequences).
// HD (head_dim, even), GW and BL are defines; KV_ACCESS is read_write.

//#include "common.wgsl"
//#include "attention_io.wgsl"

@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(8) var<storage, read> knew: array<vec2<f32>>;
@group(0) @binding(9) var<storage, read> vnew: array<vec2<f32>>;

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
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let sg = segs[wid.z];
    let c = wid.y;
    let n = sg.pos0 + 1u; // positions the row attends to
    if (c * CH >= n) {
        return; // the whole workgroup: a shorter sequence than the dispatch's longest
    }
    let h0 = wid.x * GW;
    let g = h0 / (P.n_heads / P.n_kv_heads);
    let last = c == sg.pos0 / CH;
    if (last) {
        // Of the workgroups of this kv head, the one with its first query heads stores the row.
        let store = h0 % (P.n_heads / P.n_kv_heads) == 0u;
        let at = (cache_row(sg.table, sg.pos0) * P.kv_dim + g * HD) / 2u;
        let src = (sg.row0 * P.new_stride + g * HD) / 2u;
        for (var d = lid; d < HD / 2u; d += WG) {
            new_pair(d, at + d, knew[src + d], vnew[src + d], store);
        }
    }
    let qb = sg.row0 * P.q_stride;
    for (var d = lid; d < HD; d += WG) {
        var v = vec4<f32>(0.0);
        for (var i = 0u; i < GW; i++) {
            v[i] = q[qb + (h0 + i) * HD + d];
        }
        qs[d] = v;
    }
    workgroupBarrier();

    let cnt = min(CH, n - c * CH);
    let base = (cache_row(sg.table, c * CH) * P.kv_dim + g * HD) / 2u; // the chunk's first row, kv head g
    var s = vec4<f32>(LOWEST);
    if (c * CH + lid < sg.pos0) {
        let kb = base + lid * (P.kv_dim / 2u);
        var acc = vec4<f32>(0.0);
        for (var d = 0u; d < HD / 2u; d++) {
            let kp = kpair(kb + d);
            acc += qs[2u * d] * kp.x + qs[2u * d + 1u] * kp.y;
        }
        s = acc * P.scale;
    } else if (c * CH + lid == sg.pos0) {
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
    if (lid < cnt) {
        p = exp(s - m);
    }
    pt[lid] = p;
    workgroupBarrier();

    let pb = (wid.z * P.max_chunks + c) * P.n_heads;
    let from_cache = cnt - select(0u, 1u, last); // the last chunk's last row is the new one, in vn
    for (var i = 0u; i < DPT; i++) {
        let d = lid + i * WG;
        if (d < HD / 2u) {
            var ax = vec4<f32>(0.0);
            var ay = vec4<f32>(0.0);
            for (var jj = 0u; jj < from_cache; jj++) {
                let vp = vpair(base + jj * (P.kv_dim / 2u) + d);
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
                let at = (pb + h0 + k) * PS + 2u * d;
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
            let at = (pb + h0 + k) * PS + HD;
            part[at] = m[k];
            part[at + 1u] = l[k];
        }
    }
}
