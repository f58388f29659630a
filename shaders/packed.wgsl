// packed.wgsl: arithmetic on bytes packed four to a u32 word (byte 0 in the low bits), as the K-quant
// mat-vec kernels unpack them: they mask and shift whole words (four codes per operation) and only
// widen to floats for the dot product.

// u8x4 splits v into its four bytes (byte 0 first) as floats.
fn u8x4(v: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu));
}

// dot_u8x16 is the dot product of the 16 bytes of q (word 0 byte 0 first) with x0..x3.
fn dot_u8x16(q: vec4<u32>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
    return dot(u8x4(q.x), x0) + dot(u8x4(q.y), x1) + dot(u8x4(q.z), x2) + dot(u8x4(q.w), x3);
}
