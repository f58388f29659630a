package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/model/quant"
)

// buffer is a GPU buffer owned by a device, or a texture (tex and view set, buf nil): a chunk of weights
// (weightTexture) or activations (NewActivationTexture).
type buffer struct {
	buf   *wgpu.Buffer
	Size  uint64
	label string
	tex   *wgpu.Texture
	view  *wgpu.TextureView
}

func (b *buffer) release() {
	if b == nil {
		return
	}
	if b.buf != nil {
		b.buf.Release()
		b.buf = nil
	}
	if b.view != nil {
		b.view.Release()
		b.tex.Release()
		b.view, b.tex = nil, nil
	}
}

// free releases a buffer before Close does (scratch that a load no longer needs).
func (d *device) free(b *buffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := slices.Index(d.owned, b); i >= 0 {
		d.owned = slices.Delete(d.owned, i, i+1)
	}
	b.release()
}

const storageUsage = wgpu.BufferUsageStorage | wgpu.BufferUsageCopyDst | wgpu.BufferUsageCopySrc

// align4 rounds n up to a multiple of 4, the granularity of buffer sizes, copies and writes.
func align4(n uint64) uint64 { return (n + 3) &^ 3 }

func (d *device) newBuffer(label string, size uint64, usage wgpu.BufferUsage) (*buffer, error) {
	size = max(align4(size), 4)
	if size > d.limits.MaxBufferSize {
		return nil, fmt.Errorf("buffer %s: %d bytes exceeds the device's maximum buffer size %d", label, size, d.limits.MaxBufferSize)
	}
	var b *wgpu.Buffer
	err := d.wrap("creating buffer "+label, func() error {
		var err error
		b, err = d.dev.TryCreateBuffer(&wgpu.BufferDescriptor{Label: label, Size: size, Usage: usage})
		return err
	})
	if err != nil {
		return nil, err
	}
	buf := &buffer{buf: b, Size: size, label: label}
	d.mu.Lock()
	d.owned = append(d.owned, buf)
	d.mu.Unlock()
	return buf, nil
}

// NewStorage creates a zeroed storage buffer of size bytes (rounded up to 4) that kernels read and write.
func (d *device) NewStorage(label string, size uint64) (*buffer, error) {
	if size > d.limits.MaxStorageBufferBindingSize {
		return nil, fmt.Errorf("buffer %s: %d bytes exceeds the storage binding limit %d", label, size, d.limits.MaxStorageBufferBindingSize)
	}
	return d.newBuffer(label, size, storageUsage)
}

// Upload creates a storage buffer holding data.
func (d *device) Upload(label string, data []byte) (*buffer, error) {
	b, err := d.NewStorage(label, uint64(len(data)))
	if err != nil {
		return nil, err
	}
	if err := d.Write(b, 0, data); err != nil {
		return nil, err
	}
	return b, nil
}

// UploadF32 is Upload for a float32 slice.
func (d *device) UploadF32(label string, v []float32) (*buffer, error) {
	return d.Upload(label, f32Bytes(v))
}

// Write copies data into b at byte offset off. The copy is queued and lands before the next submit's
// work runs.
func (d *device) Write(b *buffer, off uint64, data []byte) error {
	if off%4 != 0 || off+uint64(len(data)) > b.Size {
		return fmt.Errorf("writing %d bytes at %d into buffer %s of %d bytes: out of range or misaligned", len(data), off, b.label, b.Size)
	}
	if len(data) == 0 {
		return nil
	}
	if len(data)%4 != 0 {
		padded := make([]byte, align4(uint64(len(data))))
		copy(padded, data)
		data = padded
	}
	return d.wrap("writing buffer "+b.label, func() error { return d.queue.TryWriteBuffer(b.buf, off, data) })
}

// uniform creates a uniform buffer holding the little-endian encoding of fields (uint32, int or
// float32 each), padded to 16 bytes.
func (d *device) uniform(label string, fields ...any) (*buffer, error) {
	n := max((len(fields)+3)/4*4, 4)
	data := make([]byte, 4*n)
	for i, f := range fields {
		var v uint32
		switch f := f.(type) {
		case uint32:
			v = f
		case int:
			if f < 0 || f > math.MaxUint32 {
				return nil, fmt.Errorf("uniform %s: field %d = %d out of u32 range", label, i, f)
			}
			v = uint32(f)
		case float32:
			v = math.Float32bits(f)
		default:
			return nil, fmt.Errorf("uniform %s: field %d has unsupported type %T", label, i, f)
		}
		binary.LittleEndian.PutUint32(data[4*i:], v)
	}
	b, err := d.newBuffer(label, uint64(len(data)), wgpu.BufferUsageUniform|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	return b, d.Write(b, 0, data)
}

// SetStep writes the step uniform that every kernel reads: nTok rows, the first at position pos0 of its
// sequence (no kernel reads pos0: common.wgsl).
func (d *device) SetStep(nTok, pos0 int) error {
	var data [16]byte
	binary.LittleEndian.PutUint32(data[0:], uint32(nTok))
	binary.LittleEndian.PutUint32(data[4:], uint32(pos0))
	return d.Write(d.step, 0, data[:])
}

// Read copies size bytes at off from b back to the host, waiting for all submitted work first.
func (d *device) Read(b *buffer, off, size uint64) ([]byte, error) {
	out := make([]byte, size)
	if err := d.read(pendingRead{src: b, off: off, dst: out}); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadF32 reads n floats at element offset off.
func (d *device) ReadF32(b *buffer, off, n int) ([]float32, error) {
	out := make([]float32, n)
	if err := d.read(pendingRead{src: b, off: uint64(off) * 4, f32: out}); err != nil {
		return nil, err
	}
	return out, nil
}

// read submits the read-back r alone.
func (d *device) read(r pendingRead) error {
	e, err := d.NewEncoder("read " + r.src.label)
	if err != nil {
		return err
	}
	e.readBack(r)
	return e.Submit()
}

// stagingBuffer returns a mappable buffer of at least size bytes, reusing the last one when it fits.
func (d *device) stagingBuffer(size uint64) (*wgpu.Buffer, error) {
	size = max((size+255)&^255, 256)
	if d.staging != nil && d.stageSz >= size {
		return d.staging, nil
	}
	if d.staging != nil {
		d.staging.Release()
		d.staging = nil
	}
	var b *wgpu.Buffer
	err := d.wrap("creating readback buffer", func() error {
		var err error
		b, err = d.dev.TryCreateBuffer(&wgpu.BufferDescriptor{Label: "readback", Size: size,
			Usage: wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst})
		return err
	})
	if err != nil {
		return nil, err
	}
	d.staging, d.stageSz = b, size
	return b, nil
}

// weights is a 2-D tensor on the device: M rows of K elements of a ggml type, stored as GGUF blocks
// (padded as kernelTypes says) in one or more buffers of whole rows, each within the storage binding
// limit. RowBytes is a row's size on the device.
type weights struct {
	Name     string
	Type     quant.Type
	K, M     int // elements per row, rows
	RowBytes int
	Chunks   []weightChunk
	// Tex: the chunks are textures (weights.wgsl's WTEX), not storage buffers.
	Tex bool
}

// weightChunk is one buffer (or texture) of consecutive rows.
type weightChunk struct {
	Buf  *buffer
	Row0 int
	Rows int
}

// Bytes is the tensor's size.
func (w *weights) Bytes() int64 { return int64(w.RowBytes) * int64(w.M) }

// kernelType is how the WGSL kernels take a weight type: the suffix of its shaders (dq_{suffix}.wgsl,
// the WTYPE define), whether it has kernels of its own, and, where the device stores blocks larger than
// the file's, the device's block size.
type kernelType struct {
	suffix string
	// own: the type has its own mat-vec (matvec_{suffix}.wgsl) and mat-mat weight tile, 64 deep
	// (mm_tile_{suffix}.wgsl); the others run matvec.wgsl and mm_tile_dq4.wgsl through their dequantizer.
	own        bool
	blockBytes int // 0: as in the file
}

// kernelTypes are the weight types the WGSL kernels handle. It is the GPU's column of quant's table of
// types: the block layouts are quant's, and the list of supported types in messages comes from here.
//
// Q6_K's 210-byte blocks are padded to 224 on the device (6.7% more memory for those tensors) so that
// every block starts on a 16-byte boundary: its fields then load as whole vec4 words, where at 2-byte
// alignment each 16 bytes cost five word loads and a funnel shift (27% more CPU time per weight for the
// Q6_K mat-vec on lavapipe, BenchmarkMatVec).
var kernelTypes = map[quant.Type]kernelType{
	quant.F32:  {suffix: "f32"},
	quant.F16:  {suffix: "f16"},
	quant.Q8_0: {suffix: "q8_0"},
	quant.Q4_K: {suffix: "q4_k", own: true},
	quant.Q6_K: {suffix: "q6_k", own: true, blockBytes: 224},
}

// ownKernels reports whether the kernel type with suffix wt has kernels of its own (kernelType.own).
func ownKernels(wt string) bool {
	for _, kt := range kernelTypes {
		if kt.suffix == wt {
			return kt.own
		}
	}
	return false
}

// deviceRowBytes is the bytes a row of k elements of type t takes on the device.
func deviceRowBytes(t quant.Type, k int) (int, error) {
	rb, err := t.RowBytes(k)
	if err != nil {
		return 0, err
	}
	if kt := kernelTypes[t]; kt.blockBytes > 0 {
		return rb / t.TypeSize() * kt.blockBytes, nil
	}
	return rb, nil
}

// padBlocks copies src, whole blocks of from bytes, into dst as blocks of to bytes, zeroing the padding.
func padBlocks(dst, src []byte, from, to int) {
	for i, o := 0, 0; i < len(src); i, o = i+from, o+to {
		copy(dst[o:o+from], src[i:i+from])
		clear(dst[o+from : o+to])
	}
}

// UploadWeights copies a tensor of m rows of k elements of type t (raw GGUF bytes) to the device,
// splitting it into buffers of whole rows that fit a storage binding, or into textures where the device
// keeps weights in textures (device.weightTex) and the type has kernels of its own. progress, if not
// nil, is called with the bytes copied so far.
func (d *device) UploadWeights(name string, t quant.Type, k, m int, data []byte, progress func(done int64)) (*weights, error) {
	return d.uploadWeights(name, t, k, m, data, progress, d.weightTex && kernelTypes[t].own)
}

// uploadWeights is UploadWeights with the storage chosen by the caller: textures when tex is set.
func (d *device) uploadWeights(name string, t quant.Type, k, m int, data []byte, progress func(done int64), tex bool) (*weights, error) {
	if _, ok := kernelTypes[t]; !ok {
		return nil, fmt.Errorf("tensor %s: type %s is not supported by the GPU kernels (%s are; use the CPU backend, or a file of those types)",
			name, t, quant.Names(func(t quant.Type) bool { _, ok := kernelTypes[t]; return ok }))
	}
	if k <= 0 || m <= 0 || k%4 != 0 {
		return nil, fmt.Errorf("tensor %s: shape %d x %d not supported (rows need a positive multiple of 4 elements)", name, m, k)
	}
	fileRow, err := t.RowBytes(k)
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	if int64(len(data)) != int64(fileRow)*int64(m) {
		return nil, fmt.Errorf("tensor %s: %d bytes of data, want %d rows x %d bytes", name, len(data), m, fileRow)
	}
	rb, _ := deviceRowBytes(t, k)
	perChunk := int(d.maxBinding / uint64(rb))
	if perChunk == 0 {
		return nil, fmt.Errorf("tensor %s: one row of %d bytes exceeds the storage binding limit %d", name, rb, d.maxBinding)
	}
	if tex {
		// A texture holds texWidth × MaxTextureDimension2D texels of 16 bytes.
		perChunk = min(perChunk, int(uint64(texWidth)*uint64(d.limits.MaxTextureDimension2D)*16/uint64(rb)))
		if perChunk == 0 || rb%16 != 0 {
			return nil, fmt.Errorf("tensor %s: rows of %d bytes do not fit the weight textures (%d texels wide, %d high)", name, rb, texWidth, d.limits.MaxTextureDimension2D)
		}
	}
	if perChunk > 1 {
		perChunk &^= 1 // chunks keep row pairs together, which the RoPE-fused products need
	}
	w := &weights{Name: name, Type: t, K: k, M: m, RowBytes: rb, Tex: tex}
	var done int64
	for row0 := 0; row0 < m; row0 += perChunk {
		rows := min(perChunk, m-row0)
		label := name
		if perChunk < m {
			label = fmt.Sprintf("%s[%d:%d]", name, row0, row0+rows)
		}
		part := data[row0*fileRow : (row0+rows)*fileRow]
		put := func(dst []byte, off, end int) { copy(dst[off:end], part[off:end]) }
		if rb != fileRow {
			from, to := t.TypeSize(), kernelTypes[t].blockBytes
			put = func(dst []byte, off, end int) { padBlocks(dst[off/from*to:], part[off:end], from, to) }
		}
		piece := max(1, uploadPiece/fileRow) * fileRow // whole rows, so whole blocks
		size := uint64(rows * rb)
		if tex {
			size = uint64(ceilDiv(rows*rb, texRowBytes) * texRowBytes) // whole texture rows
		}
		buf, err := d.uploadMapped(label, size, len(part), piece, put, func(n int64) {
			if progress != nil {
				progress(done + n)
			}
		})
		if err != nil {
			return nil, err
		}
		if tex {
			if buf, err = d.weightTexture(buf); err != nil {
				return nil, err
			}
		}
		done += int64(len(part))
		w.Chunks = append(w.Chunks, weightChunk{Buf: buf, Row0: row0, Rows: rows})
	}
	return w, nil
}

// texWidth is the width in texels of weight textures (W_TEX_WIDTH in shaders/weights.wgsl): a power of
// two, within WebGPU's default maxTextureDimension2D (8192); texRowBytes is a row's bytes (rgba32uint
// texels of 16 bytes), a multiple of the 256 a buffer-to-texture copy needs.
const (
	texWidth    = 4096
	texRowBytes = 16 * texWidth
)

// weightTexture moves the bytes of staging, a whole number of texture rows, into a new rgba32uint
// texture (see weights.wgsl) and frees staging.
//
// Why textures: on some adapters texel fetches are cheaper than storage loads. Mesa's lavapipe
// compiles a storage load whose address differs between invocations as a loop over the SIMD lanes, a
// guarded scalar load each, but a texel fetch as vector gathers: its K-quant mat-vecs take about a
// quarter less CPU time per weight from a texture (BenchmarkWeightStorage). Tuning times both on the
// user's adapter (tune.go) and keeps textures only where they win.
func (d *device) weightTexture(staging *buffer) (*buffer, error) {
	defer d.free(staging)
	h := uint32(staging.Size / texRowBytes)
	size := wgpu.Extent3D{Width: texWidth, Height: h, DepthOrArrayLayers: 1}
	out, err := d.newTexture(staging.label, size)
	if err != nil {
		return nil, err
	}
	e, err := d.NewEncoder("weight texture")
	if err == nil {
		err = e.enc.TryCopyBufferToTexture(&wgpu.TexelCopyBufferInfo{Buffer: staging.buf, Layout: wgpu.TexelCopyBufferLayout{BytesPerRow: texRowBytes, RowsPerImage: h}},
			&wgpu.TexelCopyTextureInfo{Texture: out.tex}, &size)
		if err != nil {
			e.enc.Release()
		} else if err = e.Submit(); err == nil {
			err = d.Wait() // the staging buffer is freed on return
		}
	}
	if err != nil {
		out.release()
		return nil, fmt.Errorf("uploading %s to a texture: %w", staging.label, err)
	}
	d.mu.Lock()
	d.owned = append(d.owned, out)
	d.mu.Unlock()
	return out, nil
}

// NewActivationTexture creates a texture of rows rows of k floats (k/4 rgba32uint texels each, the floats'
// bits) from which mat-vecs read their activations (matvec_io.wgsl's XTEX; see device.headTex), filled
// a row at a time by encoder.CopyToTexture. k must be a multiple of 64, since a buffer-to-texture copy
// takes rows of a multiple of 256 bytes.
func (d *device) NewActivationTexture(label string, k, rows int) (*buffer, error) {
	if !d.activationTextureFits(k, rows) {
		return nil, fmt.Errorf("activation texture %s: %d rows of %d floats: want rows of a multiple of 64 floats, at most %d texels each way",
			label, rows, k, d.limits.MaxTextureDimension2D)
	}
	out, err := d.newTexture(label, wgpu.Extent3D{Width: uint32(k / 4), Height: uint32(rows), DepthOrArrayLayers: 1})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.owned = append(d.owned, out)
	d.mu.Unlock()
	return out, nil
}

// activationTextureFits reports whether NewActivationTexture can hold rows rows of k floats.
func (d *device) activationTextureFits(k, rows int) bool {
	return k > 0 && k%64 == 0 && rows > 0 && uint32(k/4) <= d.limits.MaxTextureDimension2D && uint32(rows) <= d.limits.MaxTextureDimension2D
}

// newTexture creates an rgba32uint texture of size that kernels read (texture_2d<u32>) and copies fill,
// with its view; the caller owns it.
func (d *device) newTexture(label string, size wgpu.Extent3D) (*buffer, error) {
	out := &buffer{Size: 16 * uint64(size.Width) * uint64(size.Height), label: label}
	err := d.wrap("creating texture "+label, func() error {
		var err error
		out.tex, err = d.dev.TryCreateTexture(&wgpu.TextureDescriptor{Label: label, Usage: wgpu.TextureUsageTextureBinding | wgpu.TextureUsageCopyDst,
			Dimension: wgpu.TextureDimension2D, Size: size, Format: wgpu.TextureFormatRGBA32Uint, MipLevelCount: 1, SampleCount: 1})
		if err != nil {
			return err
		}
		if out.view, err = out.tex.TryCreateView(nil); err != nil {
			out.tex.Release()
			out.tex = nil
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// uploadPiece bounds the bytes copied between progress reports (rounded down to whole rows).
const uploadPiece = 8 << 20

// uploadMapped creates a buffer of n bytes mapped at creation and has put copy the source's bytes
// [off, end) straight into it, in pieces of piece bytes out of srcLen, so an upload needs no staging
// copy on the host beyond what the driver does; the source may be a view of the memory-mapped file.
func (d *device) uploadMapped(label string, n uint64, srcLen, piece int, put func(dst []byte, off, end int), progress func(int64)) (*buffer, error) {
	size := max(align4(n), 4)
	var b *wgpu.Buffer
	err := d.wrap("uploading "+label, func() error {
		var err error
		b, err = d.dev.TryCreateBuffer(&wgpu.BufferDescriptor{Label: label, Size: size, Usage: storageUsage, MappedAtCreation: true})
		if err != nil {
			return err
		}
		dst, err := mappedRange(b, 0, size)
		if err != nil {
			return err
		}
		for off := 0; off < srcLen; off += piece {
			end := min(off+piece, srcLen)
			put(dst, off, end)
			if progress != nil {
				progress(int64(end))
			}
		}
		clear(dst[n:])
		return b.TryUnmap()
	})
	if err != nil {
		if b != nil {
			b.Release()
		}
		return nil, err
	}
	buf := &buffer{buf: b, Size: size, label: label}
	d.mu.Lock()
	d.owned = append(d.owned, buf)
	d.mu.Unlock()
	return buf, nil
}

// mappedRange is GetMappedRange with a failed mapping (a nil pointer, on which the wrapper's
// unsafe.Slice panics) reported as an error.
func mappedRange(b *wgpu.Buffer, off, size uint64) (m []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("mapping %d bytes failed: %v", size, r)
		}
	}()
	m = b.GetMappedRange(uint(off), uint(size))
	if uint64(len(m)) != size {
		return nil, fmt.Errorf("mapping %d bytes failed", size)
	}
	return m, nil
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// decodeF32 decodes the little-endian floats of b into dst (len(b) = 4 len(dst)). On a little-endian
// machine (every platform smolchat is built for) that is a copy: a decode step's logits are half a
// megabyte a row, which a loop a float at a time took a millisecond of every four-row step to convert.
func decodeF32(dst []float32, b []byte) {
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), b)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func u32Bytes(v []uint32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], x)
	}
	return out
}
