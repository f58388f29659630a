// q8.wgsl: the integer path of the K-quant mat-vec kernels (INT8): activations quantized to 8 bits in
// registers, 16 at a time, so that a thread multiplies four weight codes by four activations with one
// dot4I8Packed (WGSL's packed_4x8_integer_dot_product: a single instruction on GPUs with DP4A-style dot
// products, lowered to byte arithmetic elsewhere) instead of widening each code to a float.
//
// A group of 16 activations x is stored as q (four words of int8, element 4j+b in byte b of word j), a
// scale d with x ≈ d * q, |q| ≤ 127, rounded to nearest, and s = d * Σq, the sum the kernels' min and
// offset terms take: llama.cpp's Q8_1 activations, with a scale per 16 elements where Q8_1 has one per
// 32. The kernels then compute exactly the product with the quantized activations (gpu/ref's
// QuantizeQ8x16 is the twin). The quantization runs once per group and token, and serves every row a
// workgroup computes.

struct Q8x16 {
    q: vec4<u32>,
    d: f32,
    s: f32,
}

// q8x16 quantizes the 16 activations x0..x3.
fn q8x16(x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> Q8x16 {
    let m = max(max(abs(x0), abs(x1)), max(abs(x2), abs(x3)));
    let amax = max(max(m.x, m.y), max(m.z, m.w));
    let inv = select(0.0, 127.0 / amax, amax > 0.0);
    let q = vec4<u32>(pack4xI8(vec4<i32>(round(x0 * inv))), pack4xI8(vec4<i32>(round(x1 * inv))),
        pack4xI8(vec4<i32>(round(x2 * inv))), pack4xI8(vec4<i32>(round(x3 * inv))));
    let d = amax / 127.0;
    return Q8x16(q, d, d * f32(idot16(vec4<u32>(0x01010101u), q)));
}

// idot16 is Σ c·q over 16 elements: weight codes c (four bytes a word, each 0..127) times quantized
// activations q.
fn idot16(c: vec4<u32>, q: vec4<u32>) -> i32 {
    return dot4I8Packed(c.x, q.x) + dot4I8Packed(c.y, q.y) + dot4I8Packed(c.z, q.z) + dot4I8Packed(c.w, q.w);
}
