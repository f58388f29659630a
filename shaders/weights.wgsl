// weights.wgsl: binding 2, the weight rows of a product or lookup, and how kernels read them. The rows
// live either in a storage buffer or, with WTEX, in a rgba32uint texture (gpu/buffer.go's weight
// storage: tuning keeps textures on adapters that read them faster, as Mesa's lavapipe does, whose
// texel fetches are vector gathers where its storage loads are a loop over the lanes).
//
// Both hold the same bytes: the texture's texel i is the buffer's 16 bytes at 16i, texel i at
// (i % W_TEX_WIDTH, i / W_TEX_WIDTH). Kernels read through wvec (16 bytes, the K-quant kernels: WVEC4)
// or wword (4 bytes, byte-addressed blocks: bytes.wgsl), never the binding itself.

//#if WTEX
// W_TEX_WIDTH is texWidth in gpu/buffer.go.
const W_TEX_WIDTH = 4096u;

@group(0) @binding(2) var w_tex: texture_2d<u32>;

// wvec returns 16-byte word i of the rows.
fn wvec(i: u32) -> vec4<u32> {
    return textureLoad(w_tex, vec2<u32>(i % W_TEX_WIDTH, i / W_TEX_WIDTH), 0);
}

// wword returns 4-byte word i of the rows.
fn wword(i: u32) -> u32 {
    return wvec(i >> 2u)[i & 3u];
}
//#else
//#if WVEC4
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;

// wvec returns 16-byte word i of the rows.
fn wvec(i: u32) -> vec4<u32> {
    return w[i];
}
//#else
@group(0) @binding(2) var<storage, read> w: array<u32>;

// wword returns 4-byte word i of the rows.
fn wword(i: u32) -> u32 {
    return w[i];
}
//#endif
//#endif
