// bytes.wgsl: byte-addressed loads from the raw weight buffer `w` (array<u32>, declared by the kernel).
//
// WGSL storage has no 8- or 16-bit types, so quantized blocks are read as little-endian u32 words and
// picked apart with shifts. Q8_0 (34 bytes) blocks start on 2-byte boundaries, so a 4-byte field may
// straddle two words; every offset passed here is even. (Q6_K's 210-byte blocks are padded to 224 on
// the device, gpu/buffer.go's kernelTypes, so that theirs are multiples of 4.)

// u8_at returns the byte at byte offset off.
fn u8_at(off: u32) -> u32 {
    return (wword(off >> 2u) >> ((off & 3u) * 8u)) & 0xFFu;
}

// u16_at returns the 16-bit little-endian value at the even byte offset off.
fn u16_at(off: u32) -> u32 {
    return (wword(off >> 2u) >> ((off & 2u) * 8u)) & 0xFFFFu;
}

// u32_at returns the 32-bit little-endian value at the even byte offset off.
fn u32_at(off: u32) -> u32 {
    let i = off >> 2u;
    if ((off & 2u) == 0u) {
        return wword(i);
    }
    return (wword(i) >> 16u) | (wword(i + 1u) << 16u);
}

// f16_at returns the IEEE half at the even byte offset off as f32.
fn f16_at(off: u32) -> f32 {
    return unpack2x16float(u16_at(off)).x;
}

// i8x4 sign-extends the four bytes of v (byte 0 first).
fn i8x4(v: u32) -> vec4<f32> {
    let b = vec4<i32>(bitcast<i32>(v << 24u), bitcast<i32>(v << 16u), bitcast<i32>(v << 8u), bitcast<i32>(v));
    return vec4<f32>(b >> vec4<u32>(24u));
}

// load4 returns the 16 bytes at the byte offset off, a multiple of 4, as four little-endian words.
fn load4(off: u32) -> vec4<u32> {
    let i = off >> 2u;
    return vec4<u32>(wword(i), wword(i + 1u), wword(i + 2u), wword(i + 3u));
}
