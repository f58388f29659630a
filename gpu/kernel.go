package gpu

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/oliverbestmann/webgpu/wgpu"

	"smolchat/shaders"
)

// binding is the kind of one binding of a kernel.
type binding uint8

// Binding kinds. Binding 0 is always the kernel's parameter uniform and binding 1 the step uniform; the
// kernel's declaration lists the kinds of bindings 2 and up.
const (
	bindUniform binding = iota
	bindReadOnly
	bindReadWrite
	bindTexture // a texture_2d<u32>: weights or activations held in a texture (buffer.tex)
)

// kernel is a compiled compute pipeline with an explicit bind group layout.
type kernel struct {
	Name   string
	pipe   *wgpu.ComputePipeline
	layout *wgpu.BindGroupLayout
	binds  []binding // bindings 2.. (0 and 1 are the uniforms)
}

// kernelSpec names a kernel variant.
type kernelSpec struct {
	file, entry string
	defs        shaders.Defines
	binds       []binding
	subgroups   bool // the file has a SUBGROUPS variant
}

func (s kernelSpec) key() string {
	keys := make([]string, 0, len(s.defs))
	for k := range s.defs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.file + ":" + s.entry)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + s.defs[k])
	}
	return b.String()
}

// subgroupDefs are the defines whose code uses subgroup builtins: SUBGROUPS, and the mat-vecs' shuffles
// (reduce.wgsl's SG8, LANE_STORE).
var subgroupDefs = []string{"SUBGROUPS", "SG8", "LANE_STORE"}

// kernel compiles (or returns the cached) variant. A variant using subgroups that fails to compile
// disables subgroups for the device and is rebuilt with the workgroup-memory reduction, since drivers
// differ in which subgroup builtins they accept.
func (d *device) kernel(s kernelSpec) (*kernel, error) {
	if !s.subgroups {
		return d.buildKernel(s)
	}
	s.defs = withDef(s.defs, "SUBGROUPS", boolDef(d.subgroups))
	k, err := d.buildKernel(s)
	if err != nil && d.subgroups {
		d.log.Warn("subgroup kernel failed to build; using workgroup-memory reductions", "kernel", s.file, "err", err)
		d.subgroups, d.shuffle8 = false, false
		for _, name := range subgroupDefs {
			if _, ok := s.defs[name]; ok {
				s.defs = withDef(s.defs, name, "")
			}
		}
		return d.buildKernel(s)
	}
	return k, err
}

func withDef(defs shaders.Defines, name, value string) shaders.Defines {
	out := shaders.Defines{}
	for k, v := range defs {
		out[k] = v
	}
	out[name] = value
	return out
}

func (d *device) buildKernel(s kernelSpec) (*kernel, error) {
	key := s.key()
	d.mu.Lock()
	k, ok := d.kernels[key]
	d.mu.Unlock()
	if ok {
		return k, nil
	}
	src, err := shaders.Source(s.file, s.defs)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", key, err)
	}
	layout, err := d.layout(s.binds)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", key, err)
	}
	var pipe *wgpu.ComputePipeline
	err = d.wrap("building kernel "+key, func() error {
		mod, err := d.dev.TryCreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: s.file, WGSLSource: &wgpu.ShaderSourceWGSL{Code: src}})
		if err != nil {
			return err
		}
		defer mod.Release()
		pl, err := d.dev.TryCreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{Label: s.file, BindGroupLayouts: []*wgpu.BindGroupLayout{layout}})
		if err != nil {
			return err
		}
		defer pl.Release()
		pipe, err = d.dev.TryCreateComputePipeline(&wgpu.ComputePipelineDescriptor{Label: key, Layout: pl,
			Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: s.entry}})
		return err
	})
	if err != nil {
		return nil, err
	}
	k = &kernel{Name: key, pipe: pipe, layout: layout, binds: s.binds}
	d.mu.Lock()
	d.kernels[key] = k
	d.mu.Unlock()
	return k, nil
}

// layout returns the bind group layout for uniforms at 0 and 1 followed by binds; kernels with the same
// binding kinds share one, so a bind group serves all of them (matvec and matmul, say).
func (d *device) layout(binds []binding) (*wgpu.BindGroupLayout, error) {
	key := fmt.Sprint(binds)
	d.mu.Lock()
	l, ok := d.layouts[key]
	d.mu.Unlock()
	if ok {
		return l, nil
	}
	entries := []wgpu.BindGroupLayoutEntry{
		{Binding: 0, Visibility: wgpu.ShaderStageCompute, Buffer: wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeUniform}},
		{Binding: 1, Visibility: wgpu.ShaderStageCompute, Buffer: wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeUniform}},
	}
	for i, b := range binds {
		if b == bindTexture {
			entries = append(entries, wgpu.BindGroupLayoutEntry{Binding: uint32(i + 2), Visibility: wgpu.ShaderStageCompute,
				Texture: wgpu.TextureBindingLayout{SampleType: wgpu.TextureSampleTypeUint, ViewDimension: wgpu.TextureViewDimension2D}})
			continue
		}
		t := wgpu.BufferBindingTypeStorage
		switch b {
		case bindUniform:
			t = wgpu.BufferBindingTypeUniform
		case bindReadOnly:
			t = wgpu.BufferBindingTypeReadOnlyStorage
		}
		entries = append(entries, wgpu.BindGroupLayoutEntry{Binding: uint32(i + 2), Visibility: wgpu.ShaderStageCompute,
			Buffer: wgpu.BufferBindingLayout{Type: t}})
	}
	err := d.wrap("creating bind group layout", func() error {
		var err error
		l, err = d.dev.TryCreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Entries: entries})
		return err
	})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.layouts[key] = l
	d.mu.Unlock()
	return l, nil
}

// bufRange is a byte range of a buffer bound to a kernel. Size 0 means to the end of the buffer.
type bufRange struct {
	Buf       *buffer
	Off, Size uint64
}

// whole binds all of b.
func whole(b *buffer) bufRange { return bufRange{Buf: b} }

// bindGroup binds params at 0, the step uniform at 1 and the ranges at 2.. for kernel k.
func (d *device) bindGroup(k *kernel, params *buffer, ranges ...bufRange) (*wgpu.BindGroup, error) {
	return d.bindGroupStep(k, params, d.step, ranges...)
}

// bindGroupStep is bindGroup with step as the step uniform instead of the device's: an op whose token
// count is not the step's (the output projection over the selected rows) keeps its own.
func (d *device) bindGroupStep(k *kernel, params, step *buffer, ranges ...bufRange) (*wgpu.BindGroup, error) {
	if len(ranges) != len(k.binds) {
		return nil, fmt.Errorf("kernel %s takes %d buffers, got %d", k.Name, len(k.binds), len(ranges))
	}
	entries := []wgpu.BindGroupEntry{
		{Binding: 0, Buffer: params.buf, Size: params.Size},
		{Binding: 1, Buffer: step.buf, Size: step.Size},
	}
	align := uint64(max(d.limits.MinStorageBufferOffsetAlignment, 4))
	for i, r := range ranges {
		if k.binds[i] == bindTexture {
			if r.Buf == nil || r.Buf.view == nil {
				return nil, fmt.Errorf("kernel %s: texture %d is missing", k.Name, i+2)
			}
			entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 2), TextureView: r.Buf.view})
			continue
		}
		if r.Buf == nil || r.Buf.buf == nil {
			return nil, fmt.Errorf("kernel %s: buffer %d is missing", k.Name, i+2)
		}
		size := r.Size
		if size == 0 {
			size = r.Buf.Size - r.Off
		}
		if r.Off%align != 0 || r.Off+size > r.Buf.Size || size%4 != 0 {
			return nil, fmt.Errorf("kernel %s: range [%d, +%d) of buffer %s (%d bytes) is out of bounds or misaligned", k.Name, r.Off, size, r.Buf.label, r.Buf.Size)
		}
		if k.binds[i] != bindUniform && size > d.limits.MaxStorageBufferBindingSize {
			return nil, fmt.Errorf("kernel %s: binding %s of %d bytes exceeds the storage binding limit %d", k.Name, r.Buf.label, size, d.limits.MaxStorageBufferBindingSize)
		}
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 2), Buffer: r.Buf.buf, Offset: r.Off, Size: size})
	}
	var bg *wgpu.BindGroup
	err := d.wrap("binding "+k.Name, func() error {
		var err error
		bg, err = d.dev.TryCreateBindGroup(&wgpu.BindGroupDescriptor{Layout: k.layout, Entries: entries})
		return err
	})
	return bg, err
}

// deviceCounts counts the device work since it was opened: what a decode step costs in dispatches and submits.
type deviceCounts struct {
	Dispatches int64
	Submits    int64
}

type deviceStats struct {
	Dispatches, Submits atomic.Int64
}

// Stats returns the counters.
func (d *device) Stats() deviceCounts {
	return deviceCounts{Dispatches: d.stats.Dispatches.Load(), Submits: d.stats.Submits.Load()}
}

// encoder records one command buffer: compute dispatches, buffer copies and read-backs, submitted once.
type encoder struct {
	d          *device
	label      string
	enc        *wgpu.CommandEncoder
	pass       *wgpu.ComputePassEncoder
	stamps     *wgpu.PassTimestampWrites // for the next pass, set by timePass
	reads      []pendingRead
	dispatches int
	err        error
}

type pendingRead struct {
	src *buffer
	off uint64
	dst []byte    // the destination: bytes,
	f32 []float32 // or floats (little-endian on the device)
}

// size is the bytes r reads.
func (r pendingRead) size() uint64 {
	if r.f32 != nil {
		return 4 * uint64(len(r.f32))
	}
	return uint64(len(r.dst))
}

// NewEncoder starts recording.
func (d *device) NewEncoder(label string) (*encoder, error) {
	e := &encoder{d: d, label: label}
	err := d.wrap("recording "+label, func() error {
		var err error
		e.enc, err = d.dev.TryCreateCommandEncoder(&wgpu.CommandEncoderDescriptor{Label: label})
		return err
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// gridX matches GRID_X in shaders/common.wgsl.
const gridX = 32768

// grid spreads n workgroups over x and y as the kernels expect (see common.wgsl).
func grid(n int) (x, y uint32) {
	if n <= gridX {
		return uint32(n), 1
	}
	return gridX, uint32((n + gridX - 1) / gridX)
}

// Dispatch records k over a bind group with the given workgroup counts. Empty dispatches are skipped.
func (e *encoder) Dispatch(k *kernel, bg *wgpu.BindGroup, x, y, z uint32) {
	if e.err != nil || x == 0 || y == 0 || z == 0 {
		return
	}
	if lim := e.d.limits.MaxComputeWorkgroupsPerDimension; x > lim || y > lim || z > lim {
		e.err = fmt.Errorf("kernel %s: dispatch (%d, %d, %d) exceeds %d workgroups per dimension", k.Name, x, y, z, lim)
		return
	}
	if e.pass == nil {
		e.pass = e.enc.BeginComputePass(&wgpu.ComputePassDescriptor{Label: e.label, TimestampWrites: e.stamps})
		e.stamps = nil
	}
	e.pass.SetPipeline(k.pipe)
	e.pass.SetBindGroup(0, bg, nil)
	e.pass.DispatchWorkgroups(x, y, z)
	e.dispatches++
}

func (e *encoder) endPass() {
	if e.pass == nil {
		return
	}
	if err := e.pass.TryEnd(); err != nil && e.err == nil {
		e.err = fmt.Errorf("ending compute pass: %w", err)
	}
	// The pass must be released before the command buffer is finished (wgpu-native issue 412).
	e.pass.Release()
	e.pass = nil
}

// timePass ends the current pass and makes the next one write its start and end times to queries
// begin and begin+1 of qs (a device with timestamp-query). The timed pass lasts until the next endPass.
func (e *encoder) timePass(qs *wgpu.QuerySet, begin uint32) {
	e.endPass()
	e.stamps = &wgpu.PassTimestampWrites{QuerySet: qs, BeginningOfPassWriteIndex: begin, EndOfPassWriteIndex: begin + 1}
}

// resolveQueries records the copy of the first n queries of qs (8 bytes each) into dst.
func (e *encoder) resolveQueries(qs *wgpu.QuerySet, n uint32, dst *buffer) {
	e.endPass()
	e.stamps = nil
	if e.err != nil {
		return
	}
	if err := e.enc.TryResolveQuerySet(qs, 0, n, dst.buf, 0); err != nil {
		e.err = fmt.Errorf("resolving timestamps: %w", err)
	}
}

// Copy records a buffer-to-buffer copy (offsets and size multiples of 4).
func (e *encoder) Copy(src *buffer, srcOff uint64, dst *buffer, dstOff, size uint64) {
	if e.err != nil || size == 0 {
		return
	}
	if srcOff%4 != 0 || dstOff%4 != 0 || size%4 != 0 || srcOff+size > src.Size || dstOff+size > dst.Size {
		e.err = fmt.Errorf("copy of %d bytes from %s+%d to %s+%d is out of bounds or misaligned", size, src.label, srcOff, dst.label, dstOff)
		return
	}
	e.endPass()
	if err := e.enc.TryCopyBufferToBuffer(src.buf, srcOff, dst.buf, dstOff, size); err != nil {
		e.err = fmt.Errorf("recording copy from %s: %w", src.label, err)
	}
}

// CopyToTexture copies a row of dst, an activation texture (NewActivationTexture), from src at srcOff.
func (e *encoder) CopyToTexture(src *buffer, srcOff uint64, dst *buffer, row int) {
	if e.err != nil {
		return
	}
	if dst.tex == nil {
		e.err = fmt.Errorf("copy from %s: %s is not a texture", src.label, dst.label)
		return
	}
	w, h := dst.tex.GetWidth(), dst.tex.GetHeight()
	size := uint64(16 * w)
	if srcOff%16 != 0 || srcOff+size > src.Size || row < 0 || uint32(row) >= h {
		e.err = fmt.Errorf("copy of %d bytes from %s+%d to row %d of %s is out of bounds or misaligned", size, src.label, srcOff, row, dst.label)
		return
	}
	e.endPass()
	err := e.enc.TryCopyBufferToTexture(&wgpu.TexelCopyBufferInfo{Buffer: src.buf, Layout: wgpu.TexelCopyBufferLayout{Offset: srcOff, BytesPerRow: uint32(size), RowsPerImage: 1}},
		&wgpu.TexelCopyTextureInfo{Texture: dst.tex, Origin: wgpu.Origin3D{Y: uint32(row)}}, &wgpu.Extent3D{Width: w, Height: 1, DepthOrArrayLayers: 1})
	if err != nil {
		e.err = fmt.Errorf("recording copy from %s: %w", src.label, err)
	}
}

// ReadBack arranges for len(dst) bytes at off of src to be copied into dst when Submit returns.
func (e *encoder) ReadBack(src *buffer, off uint64, dst []byte) {
	e.readBack(pendingRead{src: src, off: off, dst: dst})
}

// ReadBackF32 arranges for len(dst) floats at byte offset off of src to be decoded into dst when
// Submit returns: straight from the mapped staging buffer, with no bytes in between (a decode step's
// logits are half a megabyte a row).
func (e *encoder) ReadBackF32(src *buffer, off uint64, dst []float32) {
	e.readBack(pendingRead{src: src, off: off, f32: dst})
}

func (e *encoder) readBack(r pendingRead) {
	n := r.size()
	if e.err != nil || n == 0 {
		return
	}
	if r.off%4 != 0 || n%4 != 0 || r.off+n > r.src.Size {
		e.err = fmt.Errorf("read-back of %d bytes at %d from %s (%d bytes) is out of bounds or misaligned", n, r.off, r.src.label, r.src.Size)
		return
	}
	e.reads = append(e.reads, r)
}

// Dispatches is the number of dispatches recorded so far.
func (e *encoder) Dispatches() int { return e.dispatches }

// Submit finishes the command buffer and submits it. With read-backs pending it waits for the GPU and
// fills their destinations; otherwise it returns as soon as the work is queued.
func (e *encoder) Submit() error {
	d := e.d
	e.endPass()
	defer e.enc.Release()
	if e.err != nil {
		return fmt.Errorf("%s: %w", e.label, e.err)
	}
	var total uint64
	for _, r := range e.reads {
		total += r.size()
	}
	var staging *wgpu.Buffer
	if total > 0 {
		var err error
		if staging, err = d.stagingBuffer(total); err != nil {
			return err
		}
		var off uint64
		for _, r := range e.reads {
			if err := e.enc.TryCopyBufferToBuffer(r.src.buf, r.off, staging, off, r.size()); err != nil {
				return fmt.Errorf("%s: recording read-back: %w", e.label, err)
			}
			off += r.size()
		}
	}
	err := d.wrap("submitting "+e.label, func() error {
		cmd, err := e.enc.TryFinish(nil)
		if err != nil {
			return err
		}
		defer cmd.Release()
		d.queue.Submit(cmd)
		return nil
	})
	d.stats.Submits.Add(1)
	d.stats.Dispatches.Add(int64(e.dispatches))
	if err != nil || total == 0 {
		return err
	}
	status := wgpu.MapAsyncStatus(0)
	err = d.wrap("reading back "+e.label, func() error {
		if err := staging.TryMapAsync(wgpu.MapModeRead, 0, total, func(s wgpu.MapAsyncStatus) { status = s }); err != nil {
			return err
		}
		d.dev.Poll(true, nil)
		if status != wgpu.MapAsyncStatusSuccess {
			return fmt.Errorf("mapping the read-back buffer: %s", status)
		}
		src, err := mappedRange(staging, 0, total)
		if err != nil {
			return err
		}
		var off uint64
		for _, r := range e.reads {
			if r.f32 != nil {
				decodeF32(r.f32, src[off:off+r.size()])
			} else {
				copy(r.dst, src[off:])
			}
			off += r.size()
		}
		return staging.TryUnmap()
	})
	return err
}

// Wait blocks until the device has finished the work submitted so far.
func (d *device) Wait() error {
	return d.wrap("waiting for the device", func() error {
		d.dev.Poll(true, nil)
		return nil
	})
}
