package gpu

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/oliverbestmann/webgpu/wgpu"
)

func TestChoose(t *testing.T) {
	lavapipe := AdapterInfo{Index: 0, Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Vendor: "llvmpipe", Type: "cpu", Backend: "vulkan"}
	lavapipeGL := AdapterInfo{Index: 1, Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Type: "cpu", Backend: "gl"}
	igpu := AdapterInfo{Index: 2, Name: "Intel(R) UHD Graphics 630", Type: "integrated", Backend: "vulkan"}
	dgpuGL := AdapterInfo{Index: 3, Name: "NVIDIA GeForce RTX 4070", Type: "discrete", Backend: "gl"}
	dgpu := AdapterInfo{Index: 4, Name: "NVIDIA GeForce RTX 4070", Type: "discrete", Backend: "vulkan"}
	hp := igpu
	hp.Index, hp.Name, hp.HighPerformance = 5, "Intel(R) Arc A770", true
	hp.Type = "integrated"

	tests := []struct {
		name     string
		adapters []AdapterInfo
		selector string
		force    bool
		want     int // -1: none
		wantErr  bool
	}{
		{"none at all", nil, "", false, -1, false},
		{"only software: none", []AdapterInfo{lavapipe, lavapipeGL}, "auto", false, -1, false},
		{"only software, forced: vulkan one", []AdapterInfo{lavapipeGL, lavapipe}, "", true, 0, false},
		{"discrete beats integrated and software", []AdapterInfo{lavapipe, igpu, dgpu}, "", false, 4, false},
		{"native API beats GL", []AdapterInfo{dgpuGL, dgpu}, "", false, 4, false},
		{"integrated when no discrete", []AdapterInfo{lavapipe, igpu}, "", false, 2, false},
		{"high-performance pick breaks ties", []AdapterInfo{igpu, hp}, "", false, 5, false},
		{"by index", []AdapterInfo{lavapipe, igpu}, "0", false, 0, false},
		{"index out of range", []AdapterInfo{lavapipe}, "3", false, -1, true},
		{"by name, best match", []AdapterInfo{dgpuGL, lavapipe, dgpu}, "rtx", false, 4, false},
		{"by vendor, software allowed", []AdapterInfo{lavapipe, igpu}, "LLVMPIPE", false, 0, false},
		{"no match", []AdapterInfo{lavapipe, igpu}, "radeon", false, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Choose(tt.adapters, tt.selector, tt.force)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if c.Index != tt.want {
				t.Errorf("chose %d (%s), want %d", c.Index, c.Reason, tt.want)
			}
			if c.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func TestAdapters(t *testing.T) {
	testDevice(t) // skips without an adapter
	as, err := Adapters()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) == 0 {
		t.Fatal("a device opened but Adapters lists none")
	}
	for i, a := range as {
		if a.Index != i || a.Name == "" || a.Type == "" || a.Backend == "" {
			t.Errorf("adapter %d incomplete: %+v", i, a)
		}
		if a.Limits.MaxStorageBufferBindingSize == 0 || a.Limits.MaxComputeInvocationsPerWorkgroup == 0 {
			t.Errorf("adapter %d has no limits: %+v", i, a.Limits)
		}
		t.Logf("%s features=%v max_binding=%d", a, a.Features, a.Limits.MaxStorageBufferBindingSize)
	}
}

func TestDeviceUsesAdapterLimits(t *testing.T) {
	d := testDevice(t)
	if got, want := d.Limits().MaxStorageBufferBindingSize, d.Info.Limits.MaxStorageBufferBindingSize; got != want {
		t.Errorf("device binding limit %d, adapter offers %d", got, want)
	}
	if d.Info.Has("shader-f16") != d.ShaderF16() {
		t.Errorf("shader-f16: adapter %v, device %v", d.Info.Has("shader-f16"), d.ShaderF16())
	}
}

// TestValidationErrorIsReturned records a dispatch whose bind group does not match the pipeline's
// layout; the error must come back from Submit (wgpu reports it when the command buffer is finished)
// rather than reach wgpu-native's default handler, which aborts the process.
func TestValidationErrorIsReturned(t *testing.T) {
	d := testDevice(t)
	x := must[*buffer](t)(d.NewStorage("x", 64))
	norm := must[*op](t)(d.NewRMSNorm(whole(x), whole(x), whole(x), 4, 4, 1e-5))
	store := must[*op](t)(d.NewKVStore(whole(x), whole(x), whole(x), whole(x), whole(x), 4, 4, false))
	e := must[*encoder](t)(d.NewEncoder("mismatched bind group"))
	e.Dispatch(norm.k, store.bg, 1, 1, 1)
	err := e.Submit()
	if !errors.Is(err, ErrValidation) {
		t.Fatalf("submit with a mismatched bind group: err = %v, want ErrValidation", err)
	}
	// The device stays usable after a validation error.
	if _, err := d.Read(x, 0, 16); err != nil {
		t.Errorf("device unusable after a validation error: %v", err)
	}
}

func TestOutOfRangeRequestsAreErrors(t *testing.T) {
	d := testDevice(t)
	if _, err := d.NewStorage("huge", d.Limits().MaxStorageBufferBindingSize+4); err == nil {
		t.Error("buffer beyond the binding limit accepted")
	}
	b := must[*buffer](t)(d.NewStorage("small", 16))
	if err := d.Write(b, 8, make([]byte, 16)); err == nil {
		t.Error("write past the end accepted")
	}
	if _, err := d.UploadWeights("w", 99, 4, 1, make([]byte, 16), nil); err == nil {
		t.Error("unknown tensor type accepted")
	}
	if _, err := d.UploadWeights("w", 0, 4, 2, make([]byte, 16), nil); err == nil {
		t.Error("short tensor data accepted")
	}
}

// TestDeviceLoss reports a loss through the device-lost callback, as the driver would after a reset or
// removal: every later call must fail with ErrDeviceLost without touching the device, because
// wgpu-native aborts the process on a submit to a lost device.
func TestDeviceLoss(t *testing.T) {
	m := openModel(t, "stories260K.gguf")
	b := openTestBackend(t, m, options{Context: 16})
	if _, err := b.ForwardArgmax(context.Background(), storiesPrompt); err != nil {
		t.Fatal(err)
	}
	b.d.onLost(wgpu.DeviceLostReasonUnknown, "simulated driver reset")
	if _, err := b.ForwardArgmax(context.Background(), []int32{1}); !errors.Is(err, ErrDeviceLost) {
		t.Errorf("forward after loss: err = %v, want ErrDeviceLost", err)
	}
	if _, err := b.d.NewStorage("c", 64); !errors.Is(err, ErrDeviceLost) {
		t.Errorf("allocation after loss: err = %v, want ErrDeviceLost", err)
	}
	if _, err := b.d.NewEncoder("e"); !errors.Is(err, ErrDeviceLost) {
		t.Errorf("encoder after loss: err = %v, want ErrDeviceLost", err)
	}
	if !strings.Contains(b.d.Err().Error(), "simulated driver reset") {
		t.Errorf("loss error %q does not carry the driver's message", b.d.Err())
	}
}

// TestSubgroupSizeProbe runs subgroup_size.wgsl: on a device with subgroups it reports a power of two
// that WebGPU allows (4 to 128), and the mat-vecs reduce with shuffles (reduce.wgsl's SG8) exactly on a
// CPU-type adapter that reports 8.
func TestSubgroupSizeProbe(t *testing.T) {
	d := testDevice(t)
	if !d.subgroupsAvail() {
		t.Skip("the device has no subgroups")
	}
	useReduction(t, d, reduceSubgroupAdd)
	n := d.subgroupSize()
	if n < 4 || n > 128 || n&(n-1) != 0 {
		t.Fatalf("subgroup size %d: want a power of two from 4 to 128", n)
	}
	if want := d.Info.Type == "cpu" && n == 8; d.sg8 != want {
		t.Errorf("sg8 = %v on a %s adapter with subgroups of %d", d.sg8, d.Info.Type, n)
	}
	t.Logf("%s: subgroups of %d, shuffle reduction %v", d.Info.Name, n, d.sg8)
}
