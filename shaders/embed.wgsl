// embed.wgsl: token embedding lookup with dequantization: out[t] = dequant(E[tok[t]]) for t < S.n_tok.
// A table too large for one binding is split into chunks of whole rows; each chunk is its own dispatch
// and writes only the tokens whose id falls in [row0, row0 + rows).
//
// Bindings (group 0):
//   0 P    uniform  EmbedParams
//   1 S    uniform  Step
//   2 w    storage read        array<u32>  the chunk's rows, raw GGUF blocks of type WTYPE
//   3 tok  storage read        array<u32>  token ids
//   4 out  storage read_write  array<vec4<f32>>  token t at t*dim floats
// Workgroup: 64 threads, one vec4 each. Dispatch: (ceil(dim/4 / 64), T, 1). dim % 4 == 0.

//#include "common.wgsl"

struct EmbedParams {
    dim: u32,
    row_bytes: u32,
    row0: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> P: EmbedParams;
//#include "weights.wgsl"
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

//#include "dq_{{WTYPE}}.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    let k = gid.x * 4u;
    if (t >= S.n_tok || k >= P.dim) {
        return;
    }
    let id = tok[t];
    if (id < P.row0 || id - P.row0 >= P.rows) {
        return;
    }
    out[t * (P.dim / 4u) + gid.x] = dq4((id - P.row0) * P.row_bytes, k);
}
