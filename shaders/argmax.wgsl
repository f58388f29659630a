// argmax.wgsl: the greedy token, in two passes so a decode step reads back 8 bytes instead of the logits.
// Ties go to the lower index, as a sequential scan would.
//
// Bindings (group 0), shared by both entry points:
//   0 P       uniform  ArgmaxParams
//   1 S       uniform  Step (unused)
//   2 logits  storage read        array<f32>  the row to reduce starts at element off
//   3 part    storage read_write  array<vec2<u32>>  per-workgroup winners (bits of the value, index)
//   4 result  storage read_write  array<u32>  [index, bits of the value]
// partial: 256 threads per workgroup, each workgroup scans `chunk` logits. Dispatch: (ceil(n/chunk), 1, 1).
// finish:   one workgroup of 256 reduces the n_part winners. Dispatch: (1, 1, 1).

//#include "common.wgsl"

struct ArgmaxParams {
    n: u32,      // logits in the row
    off: u32,    // element offset of the row
    chunk: u32,  // logits per partial workgroup
    n_part: u32, // partial workgroups
}

@group(0) @binding(0) var<uniform> P: ArgmaxParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> result: array<u32>;

const LOWEST = -3.40282347e38;
const NONE = 0xFFFFFFFFu;

var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

// reduce leaves the workgroup's best (value, index) in bv[0], bi[0].
fn reduce(lid: u32, v: f32, i: u32) {
    bv[lid] = v;
    bi[lid] = i;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s && better(bv[lid + s], bi[lid + s], bv[lid], bi[lid])) {
            bv[lid] = bv[lid + s];
            bi[lid] = bi[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let start = wid.x * P.chunk;
    let end = min(start + P.chunk, P.n);
    var v = LOWEST;
    var i = NONE;
    for (var j = start + lid; j < end; j += 256u) {
        let x = logits[P.off + j];
        if (better(x, j, v, i)) {
            v = x;
            i = j;
        }
    }
    reduce(lid, v, i);
    if (lid == 0u) {
        part[wid.x] = vec2<u32>(bitcast<u32>(bv[0]), bi[0]);
    }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var v = LOWEST;
    var i = NONE;
    for (var j = lid; j < P.n_part; j += 256u) {
        let c = part[j];
        let x = bitcast<f32>(c.x);
        if (c.y != NONE && better(x, c.y, v, i)) {
            v = x;
            i = c.y;
        }
    }
    reduce(lid, v, i);
    if (lid == 0u) {
        result[0] = bi[0];
        result[1] = bitcast<u32>(bv[0]);
    }
}
