// Package gpu runs SmolLM3 (and other llama-style GGUF models) on a GPU through WebGPU: adapter discovery
// and selection, a device layer that turns WebGPU failures into Go errors, weight upload with splitting
// of tensors larger than a storage binding, the WGSL kernels of package shaders, and the
// engine.Backend that runs the forward pass, registered as "gpu". It exports only what the cli reads: adapters,
// tuning and profiling reports.
//
// Every WebGPU call that can fail runs inside error scopes (see scoped), because wgpu-native's default
// handler for an uncaught error aborts the process. A lost device is remembered, and every later call
// returns ErrDeviceLost.
package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// deviceOptions chooses and configures a device.
type deviceOptions struct {
	// Adapter selects the adapter: "" or "auto", an index, or a name substring (see Choose).
	Adapter string
	// Force lets the auto policy use a CPU-type adapter when no hardware one exists.
	Force bool
	// MaxBindingSize caps the bytes of one storage binding; 0 means the device limit. Tests set it tiny
	// so that splitting large tensors across bindings is exercised on small models.
	MaxBindingSize uint64
	// NoSubgroups makes kernels reduce through workgroup memory even when the device has subgroups.
	NoSubgroups bool
	// Int8 makes the K-quant mat-vecs that tuning did not choose take the integer path (q8.wgsl) where
	// the device has it, so that tests check its numerics end to end.
	Int8 bool
	// F16Tiles makes the prefill mat-mats that tuning did not choose keep their tiles as f16 pairs
	// (matmul.wgsl F16), so that tests check their numerics end to end.
	F16Tiles bool
	// WeightTextures keeps the K-quant weights in textures (weights.wgsl's WTEX) whatever tuning says,
	// so that tests check the texture path end to end.
	WeightTextures bool
	// MatMat makes steps of more than matvecMaxT tokens take the tiled mat-mat even on a CPU-type
	// adapter, where they go through the few-token mat-vec (device.prefillMatVec), so that tests check
	// the mat-mat end to end there.
	MatMat bool
	// Log receives device messages; nil discards them.
	Log *slog.Logger
}

// device is an opened WebGPU device with the kernels built on it. Its methods are not safe for
// concurrent use; the backend serializes access.
type device struct {
	Info   AdapterInfo // the adapter in use
	Reason string      // why it was chosen

	inst    *wgpu.Instance
	adapter *wgpu.Adapter
	dev     *wgpu.Device
	queue   *wgpu.Queue
	limits  wgpu.Limits
	log     *slog.Logger

	f16        bool   // shader-f16 enabled
	timestamps bool   // timestamp-query enabled: the profiler times passes inside one submit
	sgFeature  bool   // a subgroup feature is enabled on the device
	subgroups  bool   // subgroup kernels in use
	sg8        bool   // a CPU-type adapter whose subgroups have 8 invocations (probed at open)
	shuffle8   bool   // the mat-vecs reduce with subgroup shuffles where sg8 (reduce.wgsl's SG8)
	dot4       bool   // WGSL's packed 4x8-bit integer dot products compile (the INT8 mat-vec variants)
	int8       bool   // deviceOptions.Int8
	f16Tiles   bool   // deviceOptions.F16Tiles
	weightTex  bool   // K-quant weights are uploaded to textures (UploadWeights): tuning's choice or deviceOptions.WeightTextures
	maxBinding uint64 // bytes per storage binding, a multiple of 256
	// prefillMatVec sends the products of every step through the mat-vec kernels, a few tokens a
	// workgroup (matMulOp.Record), never the tiled mat-mat: set on CPU-type adapters. There the weights'
	// second reading comes from the CPU's caches while the mat-mat's workgroup-memory tiles are loads
	// and stores of each lane in turn: on lavapipe a 32-token prompt went 2-3 times faster through the
	// mat-vec (docs/BENCHMARKS.md). On a GPU the mat-mat reads each weight once for 64 tokens.
	prefillMatVec bool

	// matmulTile is the prefill mat-mat shape new products use; zero means the first of matmulPreferred
	// the adapter accepts. Tests (and a tuner) set it to build other variants.
	matmulTile matmulShape

	lost  atomic.Pointer[error]
	stats deviceStats

	mu      sync.Mutex // guards the caches below
	kernels map[string]*kernel
	layouts map[string]*wgpu.BindGroupLayout
	step    *buffer
	staging *wgpu.Buffer
	stageSz uint64
	owned   []*buffer // buffers released by Close

	tuned     map[matShape]matvecShape // mat-vec variants chosen by tuning (tune.go), by weight shape
	tunedFew  map[matShape]fewShape    // the few-token mat-vec variants' shapes chosen by tuning
	tunedTile map[matShape]matmulShape // mat-mat tiles chosen by tuning, by weight shape
}

// headTex reports whether the output projection reads its input, the selected rows, from a texture
// (NewActivationTexture): where every step takes the mat-vec, since on a CPU-type adapter a texel fetch
// compiles to vector gathers but a storage load whose address differs between lanes to a loop over
// them, and each workgroup of the vocabulary's rows loads every selected row's activations. (Rows a
// texture cannot hold keep the buffer: activationTextureFits.)
func (d *device) headTex() bool {
	return d.prefillMatVec
}

// cpuType reports a CPU-type adapter (lavapipe, SwiftShader, WARP): its kernels are CPU code, whose
// costs differ from a GPU's (per-lane loads, SIMD-register subgroups), so some kernel choices differ.
func (d *device) cpuType() bool { return d.Info.Type == "cpu" }

// openDevice enumerates adapters, picks one with Choose, and opens a device on it with the adapter's own
// limits (not WebGPU's defaults) and the optional features smolchat can use. It returns an error
// wrapping ErrNoAdapter when nothing qualifies.
func openDevice(opts deviceOptions) (*device, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	inst, err := newInstance()
	if err != nil {
		return nil, err
	}
	raw := inst.EnumerateAdapters(nil)
	infos := make([]AdapterInfo, len(raw))
	for i, a := range raw {
		infos[i] = describe(i, a)
	}
	release := func(keep int) {
		for i, a := range raw {
			if i != keep {
				a.Release()
			}
		}
	}
	choice, err := Choose(infos, opts.Adapter, opts.Force)
	if err != nil {
		release(-1)
		inst.Release()
		return nil, fmt.Errorf("%w: %v", errNoAdapter, err)
	}
	if choice.Index < 0 {
		release(-1)
		inst.Release()
		return nil, fmt.Errorf("%w: %s", errNoAdapter, choice.Reason)
	}
	release(choice.Index)
	d := &device{
		Info:      infos[choice.Index],
		Reason:    choice.Reason,
		inst:      inst,
		adapter:   raw[choice.Index],
		log:       log,
		kernels:   map[string]*kernel{},
		layouts:   map[string]*wgpu.BindGroupLayout{},
		tuned:     map[matShape]matvecShape{},
		tunedFew:  map[matShape]fewShape{},
		tunedTile: map[matShape]matmulShape{},
	}
	if err := d.open(opts); err != nil {
		d.Close()
		return nil, fmt.Errorf("opening %s: %w", d.Info, err)
	}
	return d, nil
}

func (d *device) open(opts deviceOptions) error {
	d.limits = d.adapter.GetLimits()
	var features []wgpu.FeatureName
	if d.adapter.HasFeature(wgpu.FeatureNameShaderF16) {
		features = append(features, wgpu.FeatureNameShaderF16)
		d.f16 = true
	}
	if d.adapter.HasFeature(wgpu.FeatureNameTimestampQuery) {
		features = append(features, wgpu.FeatureNameTimestampQuery)
		d.timestamps = true
	}
	if sg := subgroupFeature(d.adapter); sg != 0 {
		features = append(features, sg)
		d.sgFeature = true
		d.subgroups = !opts.NoSubgroups
	}
	limits := d.limits
	dev, err := d.adapter.RequestDevice(&wgpu.DeviceDescriptor{
		Label:              "smolchat",
		RequiredFeatures:   features,
		RequiredLimits:     &limits,
		DeviceLostCallback: d.onLost,
	})
	if err != nil {
		return fmt.Errorf("requesting device: %w", err)
	}
	if dev == nil || !dev.IsValid() {
		return errors.New("requesting device: the adapter returned no device")
	}
	d.dev = dev
	d.queue = dev.GetQueue()
	d.maxBinding = min(d.limits.MaxStorageBufferBindingSize, d.limits.MaxBufferSize, 1<<31)
	if opts.MaxBindingSize > 0 {
		d.maxBinding = min(d.maxBinding, opts.MaxBindingSize)
	}
	d.maxBinding &^= 255
	if d.maxBinding == 0 {
		return fmt.Errorf("storage binding limit %d bytes is too small", d.limits.MaxStorageBufferBindingSize)
	}
	step, err := d.newBuffer("step", 16, wgpu.BufferUsageUniform|wgpu.BufferUsageCopyDst)
	if err != nil {
		return err
	}
	d.step = step
	d.dot4 = d.compiles(dot4Probe)
	// Software adapters run a subgroup as the lanes of one SIMD register, so its size is the same for
	// every kernel; on a GPU it may differ between kernels (and subgroupAdd is a hardware reduction).
	d.sg8 = d.subgroups && d.cpuType() && d.subgroupSize() == 8
	d.shuffle8 = d.sg8
	d.int8 = opts.Int8
	d.f16Tiles = opts.F16Tiles
	d.weightTex = opts.WeightTextures
	d.prefillMatVec = d.cpuType() && !opts.MatMat
	d.log.Debug("gpu device opened", "adapter", d.Info.Name, "type", d.Info.Type, "backend", d.Info.Backend,
		"shader_f16", d.f16, "subgroups", d.subgroups, "subgroups_of_8", d.sg8, "dot4", d.dot4, "prefill_matvec", d.prefillMatVec, "max_binding", d.maxBinding, "reason", d.Reason)
	return nil
}

// dot4Probe uses what the integer mat-vec path needs of WGSL's packed_4x8_integer_dot_product language
// extension. WebGPU implementations list the language extensions they have, but the Go binding does not
// expose the list, so the device compiles this instead.
const dot4Probe = `@group(0) @binding(0) var<storage, read_write> o: array<i32>;
@compute @workgroup_size(1) fn main() { o[0] = dot4I8Packed(pack4xI8(vec4<i32>(o[1])), 0x01010101u); }`

// compiles reports whether the device accepts the WGSL source src.
func (d *device) compiles(src string) bool {
	err := d.wrap("compiling a probe", func() error {
		mod, err := d.dev.TryCreateShaderModule(&wgpu.ShaderModuleDescriptor{Label: "probe", WGSLSource: &wgpu.ShaderSourceWGSL{Code: src}})
		if err == nil {
			mod.Release()
		}
		return err
	})
	return err == nil
}

// subgroupSize runs subgroup_size.wgsl and returns the subgroup size it reports, 0 when it fails.
func (d *device) subgroupSize() uint32 {
	k, err := d.kernel(kernelSpec{file: "subgroup_size.wgsl", entry: "main", binds: []binding{bindReadWrite}})
	if err != nil {
		d.log.Debug("subgroup size probe failed to build", "err", err)
		return 0
	}
	out, err := d.NewStorage("subgroup size", 16)
	if err != nil {
		return 0
	}
	defer d.free(out)
	p, err := d.uniform("subgroup size params", 0)
	if err != nil {
		return 0
	}
	defer d.free(p)
	bg, err := d.bindGroupStep(k, p, d.step, whole(out))
	if err != nil {
		return 0
	}
	defer bg.Release()
	raw := make([]byte, 4)
	e, err := d.NewEncoder("subgroup size")
	if err != nil {
		return 0
	}
	e.Dispatch(k, bg, 1, 1, 1)
	e.ReadBack(out, 0, raw)
	if err := e.Submit(); err != nil {
		d.log.Debug("subgroup size probe failed", "err", err)
		return 0
	}
	return binary.LittleEndian.Uint32(raw)
}

// onLost is the device-lost callback: it marks the device dead, so every later call returns the loss
// instead of reaching wgpu-native, which aborts the process when work is submitted to a lost device.
func (d *device) onLost(reason wgpu.DeviceLostReason, message string) {
	err := fmt.Errorf("%w (%s): %s", ErrDeviceLost, reason, message)
	d.lost.CompareAndSwap(nil, &err)
	d.log.Error("gpu device lost", "adapter", d.Info.Name, "reason", reason.String(), "message", message)
}

// Err is nil while the device works, and the loss error after the device was lost or closed.
func (d *device) Err() error {
	if p := d.lost.Load(); p != nil {
		return *p
	}
	if d.dev == nil {
		return fmt.Errorf("%w: device is closed", ErrDeviceLost)
	}
	return nil
}

// ShaderF16 reports whether the device has the shader-f16 feature enabled.
func (d *device) ShaderF16() bool { return d.f16 }

// Subgroups reports whether kernels use subgroup reductions.
func (d *device) Subgroups() bool { return d.subgroups }

// subgroupsAvail reports whether the device could run subgroup kernels.
func (d *device) subgroupsAvail() bool { return d.sgFeature }

// Limits are the device's limits (the adapter's, requested in full).
func (d *device) Limits() wgpu.Limits { return d.limits }

// Close releases the device and everything created on it. It is safe to call more than once.
func (d *device) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range d.owned {
		b.release()
	}
	d.owned = nil
	if d.staging != nil {
		d.staging.Release()
		d.staging = nil
	}
	for k, kern := range d.kernels {
		kern.pipe.Release()
		delete(d.kernels, k)
	}
	for k, l := range d.layouts {
		l.Release()
		delete(d.layouts, k)
	}
	if d.queue != nil {
		d.queue.Release()
		d.queue = nil
	}
	if d.dev != nil {
		err := fmt.Errorf("%w: device is closed", ErrDeviceLost)
		d.lost.CompareAndSwap(nil, &err)
		destroyDevice(d.dev)
		d.dev.Release()
		d.dev = nil
	}
	if d.adapter != nil {
		d.adapter.Release()
		d.adapter = nil
	}
	if d.inst != nil {
		d.inst.Release()
		d.inst = nil
	}
	return nil
}

// wrap runs f inside error scopes after checking the device is alive.
func (d *device) wrap(what string, f func() error) error {
	if err := d.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := scoped(d.dev, what, f); err != nil {
		return err
	}
	// A loss reported while f ran (e.g. during a Poll) surfaces here rather than on the next call.
	if err := d.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
