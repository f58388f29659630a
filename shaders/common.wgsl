// common.wgsl: declarations every kernel shares.
//
// Binding 1 of group 0 is the step uniform: what changes from one submit to the next (how many rows it
// evaluates). The host writes it once per submit, so the recorded dispatches and their bind groups never
// change; what else varies (each row's RoPE angles, the sequences attention takes) lives in buffers the
// host writes alongside.

struct Step {
    n_tok: u32, // rows evaluated by this submit, of one sequence or several (1 when one sequence decodes)
    pos0: u32,  // position of the first of them in its sequence; no kernel reads it: RoPE angles come
                // per row and attention takes each sequence's positions (attention_io.wgsl's Seg)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(1) var<uniform> S: Step;

// GRID_X is the dispatch width of kernels that may need more workgroups than one dimension allows: a
// workgroup's linear index is workgroup_id.x + workgroup_id.y * GRID_X, and the host dispatches
// (min(n, GRID_X), ceil(n / GRID_X), ...). Dispatches narrower than GRID_X have workgroup_id.y == 0.
const GRID_X = 32768u;
