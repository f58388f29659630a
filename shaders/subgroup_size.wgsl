// subgroup_size.wgsl: a probe that reports the subgroup size the device runs compute kernels with, so
// that the host may choose kernel variants written for one size (reduce.wgsl's SG8).
//
// Bindings (group 0):
//   0 P    uniform  (unused; every kernel has one)
//   1 S    uniform  Step (unused)
//   2 out  storage read_write  array<u32>  out[0] = the subgroup size
// Workgroup: 64 threads; thread 0 stores. Dispatch: (1, 1, 1).

@group(0) @binding(0) var<uniform> P: vec4<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) size: u32) {
    if (lid == 0u) {
        out[0] = size;
    }
}
