// attention.wgsl: causal grouped-query attention of a prefill step's rows over one layer's paged KV
// cache, for one or more sequences (a Seg each, attention_io.wgsl). Row t of a sequence (its position
// pos0 + t) of head h attends to the sequence's positions 0 ..= pos0 + t of kv head g = h / GQ
// (GQ = n_heads / n_kv_heads, a define):
//   out = softmax(q . K^T * scale) V
// (Sequences with one row run attention_decode.wgsl, split over the cache.)
//
// Bindings (group 0):
//   0 P       uniform  AttnParams (attention_io.wgsl)
//   1 S       uniform  Step
//   2 q       storage read        array<f32>  queries, row t head h at t*q_stride + h*HD
//   3 kc      storage read        key cache, paged (attention_io.wgsl)
//   4 vc      storage read        value cache, same layout
//   5 out     storage read_write  array<f32>  row t head h at t*out_stride + h*HD
//   6 segs    storage read        the sequences, one per workgroup_id.z
//   7 tables  storage read        their block tables
//
// Workgroup: 64 threads for one kv head and a block of BQ = 64 / GQ consecutive rows of one sequence:
// thread r < BQ*GQ is query row (row t0 + r / GQ, head g*GQ + r % GQ), its query and output in
// registers. The sequence's positions are walked in tiles of BK = 1024 / HD positions (8 KiB of keys and
// values in workgroup memory whatever the head size): the threads load a tile together, once for the
// workgroup's BQ rows and GQ heads (where a workgroup per query would read it BQ*GQ times), then each row
// scores the tile's keys, rescales its running sum once per tile (online softmax: running max m and sum
// l, so exp never overflows and any context fits), and adds the tile's weighted values. Positions past a
// row's own are masked.
// Dispatch: (n_kv_heads, ceil(most rows of a sequence / BQ), sequences). HD is even.

//#include "common.wgsl"
//#include "attention_io.wgsl"

@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG = 64u;
const HD = {{HD}}u;
const HP = HD / 2u; // element pairs per head
const GQ = {{GQ}}u;
const BQ = max(1u, WG / GQ);
const BK = max(1u, 1024u / HD);

var<workgroup> kt: array<vec2<f32>, BK * HP>;
var<workgroup> vt: array<vec2<f32>, BK * HP>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let sg = segs[wid.z];
    let t0 = wid.y * BQ;
    if (t0 >= sg.n_tok) {
        return; // the whole workgroup: a shorter sequence than the dispatch's longest
    }
    let g = wid.x;
    let t = t0 + lid / GQ;
    let h = g * GQ + lid % GQ;
    let valid = lid < BQ * GQ && t < sg.n_tok;
    let n = sg.pos0 + t + 1u; // positions this row attends to
    // Positions any row of the workgroup attends to: up to its last row's.
    let n_all = sg.pos0 + min(t0 + BQ, sg.n_tok);
    let row = sg.row0 + t;

    var qv: array<vec2<f32>, HP>;
    var o: array<vec2<f32>, HP>;
    if (valid) {
        let qb = row * P.q_stride + h * HD;
        for (var d = 0u; d < HP; d++) {
            qv[d] = vec2<f32>(q[qb + 2u * d], q[qb + 2u * d + 1u]) * P.scale;
        }
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j0 = 0u; j0 < n_all; j0 += BK) {
        let cnt = min(BK, n_all - j0);
        for (var i = lid; i < cnt * HP; i += WG) {
            let at = (cache_row(sg.table, j0 + i / HP) * P.kv_dim + g * HD) / 2u + i % HP;
            kt[i] = kpair(at);
            vt[i] = vpair(at);
        }
        workgroupBarrier();
        if (valid && j0 < n) {
            let seen = min(cnt, n - j0);
            var s: array<f32, BK>;
            var m_tile = m;
            for (var jj = 0u; jj < seen; jj++) {
                var acc = vec2<f32>(0.0);
                for (var d = 0u; d < HP; d++) {
                    acc += qv[d] * kt[jj * HP + d];
                }
                s[jj] = acc.x + acc.y;
                m_tile = max(m_tile, s[jj]);
            }
            let alpha = exp(m - m_tile);
            l *= alpha;
            for (var d = 0u; d < HP; d++) {
                o[d] *= alpha;
            }
            for (var jj = 0u; jj < seen; jj++) {
                let p = exp(s[jj] - m_tile);
                l += p;
                for (var d = 0u; d < HP; d++) {
                    o[d] += p * vt[jj * HP + d];
                }
            }
            m = m_tile;
        }
        workgroupBarrier();
    }
    if (valid) {
        let ob = row * P.out_stride + h * HD;
        for (var d = 0u; d < HP; d++) {
            out[ob + 2u * d] = o[d].x / l;
            out[ob + 2u * d + 1u] = o[d].y / l;
        }
    }
}
