// attention_combine.wgsl: the second pass of split decode attention: merges the partial softmaxes that
// attention_decode.wgsl wrote for each chunk of a sequence's positions, per query head, with
// log-sum-exp rescaling:
//   M = max m_c,   out = Σ exp(m_c - M) o_c / Σ exp(m_c - M) l_c
//
// Bindings (group 0): attention_io.wgsl's (q, kc, vc, tables are bound but not read), and
//   5 part  storage read        array<f32>  attention_decode.wgsl's partials, same layout
//   8 out   storage read_write  array<f32>  row t head h at t*out_stride + h*HD
// 64 threads per (head, sequence), each owning the output dim pairs (2d, 2d+1) for d = lid, lid+64, ...;
// no barriers. Dispatch: (n_heads, sequences, 1). HD and BL are defines; KV_ACCESS is read.

//#include "common.wgsl"
//#include "attention_io.wgsl"

@group(0) @binding(5) var<storage, read> part: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

const WG = 64u;
const CH = 64u; // attention_decode.wgsl's chunk
const HD = {{HD}}u;
const DPT = (HD / 2u + WG - 1u) / WG;
const PS = HD + 2u; // floats per partial
const LOWEST = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let sg = segs[wid.y];
    let nc = (sg.pos0 + CH) / CH; // chunks over pos0 + 1 positions
    let pb = wid.y * P.max_chunks;
    var mx = LOWEST;
    for (var c = 0u; c < nc; c++) {
        mx = max(mx, part[((pb + c) * P.n_heads + h) * PS + HD]);
    }
    var l = 0.0;
    var o: array<vec2<f32>, DPT>;
    for (var c = 0u; c < nc; c++) {
        let base = ((pb + c) * P.n_heads + h) * PS;
        let a = exp(part[base + HD] - mx);
        l += a * part[base + HD + 1u];
        for (var i = 0u; i < DPT; i++) {
            let d = lid + i * WG;
            if (d < HD / 2u) {
                o[i] += a * vec2<f32>(part[base + 2u * d], part[base + 2u * d + 1u]);
            }
        }
    }
    let ob = sg.row0 * P.out_stride + h * HD;
    for (var i = 0u; i < DPT; i++) {
        let d = lid + i * WG;
        if (d < HD / 2u) {
            out[ob + 2u * d] = o[i].x / l;
            out[ob + 2u * d + 1u] = o[i].y / l;
        }
    }
}
