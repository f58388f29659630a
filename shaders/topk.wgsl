// topk.wgsl: the K largest logits (K <= 64) with their indices, in descending order, ties to the lower
// index, so sampling reads back a short candidate list instead of the whole vocabulary.
//
// Bindings (group 0), shared by both entry points:
//   0 P       uniform  TopKParams
//   1 S       uniform  Step (unused)
//   2 logits  storage read        array<f32>  the row starts at element off
//   3 part    storage read_write  array<vec2<u32>>  K candidates per partial workgroup (value bits, index)
//   4 result  storage read_write  array<vec2<u32>>  the K winners (value bits, index)
// partial: 256 threads per workgroup; each workgroup copies a slice of 1024 logits into workgroup memory
//          and extracts its K best by K rounds of a tree max. Dispatch: (ceil(n/1024), 1, 1).
// finish:   one workgroup of 256 runs the same rounds over the n_part*K candidates in `part`, marking
//          each winner taken in place. Dispatch: (1, 1, 1).
// Entries that do not exist (a slice shorter than K) carry index 0xFFFFFFFF and never win.

//#include "common.wgsl"

struct TopKParams {
    n: u32,      // logits in the row
    off: u32,    // element offset of the row
    k: u32,      // candidates wanted
    n_part: u32, // partial workgroups
}

@group(0) @binding(0) var<uniform> P: TopKParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> result: array<vec2<u32>>;

const SLICE = 1024u;
const LOWEST = -3.40282347e38;
const NONE = 0xFFFFFFFFu;

var<workgroup> vals: array<f32, SLICE>;
var<workgroup> taken: array<u32, SLICE>;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>; // index of the element
var<workgroup> bp: array<u32, 256>; // where it sits (slot in vals, or in part)

fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
    return i != NONE && (j == NONE || v > w || (v == w && i < j));
}

fn reduce(lid: u32, v: f32, i: u32, p: u32) {
    bv[lid] = v;
    bi[lid] = i;
    bp[lid] = p;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s && better(bv[lid + s], bi[lid + s], bv[lid], bi[lid])) {
            bv[lid] = bv[lid + s];
            bi[lid] = bi[lid + s];
            bp[lid] = bp[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let start = wid.x * SLICE;
    for (var s = lid; s < SLICE; s += 256u) {
        if (start + s < P.n) {
            vals[s] = logits[P.off + start + s];
            taken[s] = 0u;
        } else {
            vals[s] = LOWEST;
            taken[s] = 1u;
        }
    }
    workgroupBarrier();
    for (var r = 0u; r < P.k; r++) {
        var v = LOWEST;
        var i = NONE;
        var p = 0u;
        for (var s = lid; s < SLICE; s += 256u) {
            if (taken[s] == 0u && better(vals[s], start + s, v, i)) {
                v = vals[s];
                i = start + s;
                p = s;
            }
        }
        reduce(lid, v, i, p);
        if (lid == 0u) {
            part[wid.x * P.k + r] = vec2<u32>(bitcast<u32>(bv[0]), bi[0]);
            if (bi[0] != NONE) {
                taken[bp[0]] = 1u;
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    let n = P.n_part * P.k;
    for (var r = 0u; r < P.k; r++) {
        var v = LOWEST;
        var i = NONE;
        var p = 0u;
        for (var s = lid; s < n; s += 256u) {
            let c = part[s];
            let x = bitcast<f32>(c.x);
            if (better(x, c.y, v, i)) {
                v = x;
                i = c.y;
                p = s;
            }
        }
        reduce(lid, v, i, p);
        if (lid == 0u) {
            result[r] = vec2<u32>(bitcast<u32>(bv[0]), bi[0]);
            if (bi[0] != NONE) {
                part[bp[0]].y = NONE;
            }
        }
        storageBarrier();
        workgroupBarrier();
    }
}
