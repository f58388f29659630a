package gpu

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// AdapterInfo describes one WebGPU adapter as the system reports it.
type AdapterInfo struct {
	Index    int      `json:"index"`    // position in the enumeration; what --gpu-adapter takes
	Name     string   `json:"name"`     // device name, e.g. "NVIDIA GeForce RTX 4070" or "llvmpipe (LLVM 15.0.6, 256 bits)"
	Vendor   string   `json:"vendor"`   // may be empty
	Driver   string   `json:"driver"`   // driver description, may be empty
	Type     string   `json:"type"`     // "discrete", "integrated", "cpu" or "unknown"
	Backend  string   `json:"backend"`  // "vulkan", "metal", "dx12", "gl", ...
	Features []string `json:"features"` // of those smolchat uses: "shader-f16", "subgroups", "timestamp-query"
	Limits   Limits   `json:"limits"`
	// HighPerformance marks the adapter the system offers for power preference "high-performance"; it
	// breaks ties in the auto policy.
	HighPerformance bool `json:"high_performance"`
}

// Limits are the adapter limits that decide how models are laid out on the device.
type Limits struct {
	MaxStorageBufferBindingSize       uint64 `json:"max_storage_buffer_binding_size"`
	MaxBufferSize                     uint64 `json:"max_buffer_size"`
	MaxComputeWorkgroupStorageSize    uint32 `json:"max_compute_workgroup_storage_size"`
	MaxComputeInvocationsPerWorkgroup uint32 `json:"max_compute_invocations_per_workgroup"`
	MaxComputeWorkgroupsPerDimension  uint32 `json:"max_compute_workgroups_per_dimension"`
	MaxStorageBuffersPerShaderStage   uint32 `json:"max_storage_buffers_per_shader_stage"`
}

// Has reports whether the adapter has a feature by the names used in Features.
func (a AdapterInfo) Has(feature string) bool {
	for _, f := range a.Features {
		if f == feature {
			return true
		}
	}
	return false
}

func (a AdapterInfo) String() string {
	return fmt.Sprintf("#%d %s (%s, %s)", a.Index, a.Name, a.Type, a.Backend)
}

// errNoAdapter means no adapter qualifies for the request; the caller falls back to the CPU backend.
var errNoAdapter = errors.New("no suitable GPU adapter")

// Adapters lists the system's WebGPU adapters in enumeration order.
func Adapters() ([]AdapterInfo, error) {
	inst, err := newInstance()
	if err != nil {
		return nil, err
	}
	defer inst.Release()
	raw := inst.EnumerateAdapters(nil)
	infos := make([]AdapterInfo, len(raw))
	for i, a := range raw {
		infos[i] = describe(i, a)
		a.Release()
	}
	if hp, err := inst.RequestAdapter(&wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance}); err == nil {
		want := describe(-1, hp)
		hp.Release()
		for i := range infos {
			if infos[i].Name == want.Name && infos[i].Backend == want.Backend && infos[i].Type == want.Type {
				infos[i].HighPerformance = true
				break
			}
		}
	}
	return infos, nil
}

// newInstance creates a wgpu instance, turning the wrapper's panic on failure into an error.
func newInstance() (inst *wgpu.Instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("creating WebGPU instance: %v", r)
		}
	}()
	return wgpu.CreateInstance(&wgpu.InstanceDescriptor{Backends: primaryBackends}), nil
}

// primaryBackends are Vulkan, Metal, DX12 and browser WebGPU (webgpu.h's WGPUInstanceBackend_Primary).
// OpenGL is left out: wgpu's GL backend is a weaker compute target, and probing it on a machine
// without a display makes Mesa print errors.
const primaryBackends wgpu.InstanceBackend = 1<<0 | 1<<2 | 1<<3 | 1<<5

func describe(i int, a *wgpu.Adapter) AdapterInfo {
	info := a.GetInfo()
	l := a.GetLimits()
	ai := AdapterInfo{
		Index:   i,
		Name:    strings.TrimSpace(info.Device),
		Vendor:  strings.TrimSpace(info.Vendor),
		Driver:  strings.TrimSpace(info.Description),
		Type:    adapterType(info.AdapterType),
		Backend: backendName(info.BackendType),
		Limits: Limits{
			MaxStorageBufferBindingSize:       l.MaxStorageBufferBindingSize,
			MaxBufferSize:                     l.MaxBufferSize,
			MaxComputeWorkgroupStorageSize:    l.MaxComputeWorkgroupStorageSize,
			MaxComputeInvocationsPerWorkgroup: l.MaxComputeInvocationsPerWorkgroup,
			MaxComputeWorkgroupsPerDimension:  l.MaxComputeWorkgroupsPerDimension,
			MaxStorageBuffersPerShaderStage:   l.MaxStorageBuffersPerShaderStage,
		},
	}
	if ai.Name == "" {
		ai.Name = "unnamed adapter"
	}
	if a.HasFeature(wgpu.FeatureNameShaderF16) {
		ai.Features = append(ai.Features, "shader-f16")
	}
	if subgroupFeature(a) != 0 {
		ai.Features = append(ai.Features, "subgroups")
	}
	if a.HasFeature(wgpu.FeatureNameTimestampQuery) {
		ai.Features = append(ai.Features, "timestamp-query")
	}
	return ai
}

// subgroupFeature is the feature that enables WGSL subgroup operations on this adapter: the standard
// "subgroups" where offered, else wgpu's native one (what wgpu-native reports on Vulkan), else 0.
func subgroupFeature(a *wgpu.Adapter) wgpu.FeatureName {
	switch {
	case a.HasFeature(wgpu.FeatureNameSubgroups):
		return wgpu.FeatureNameSubgroups
	case a.HasFeature(wgpu.NativeFeatureSubgroup):
		return wgpu.NativeFeatureSubgroup
	}
	return 0
}

func adapterType(t wgpu.AdapterType) string {
	switch t {
	case wgpu.AdapterTypeDiscreteGPU:
		return "discrete"
	case wgpu.AdapterTypeIntegratedGPU:
		return "integrated"
	case wgpu.AdapterTypeCPU:
		return "cpu"
	}
	return "unknown"
}

func backendName(b wgpu.BackendType) string {
	switch b {
	case wgpu.BackendTypeVulkan:
		return "vulkan"
	case wgpu.BackendTypeMetal:
		return "metal"
	case wgpu.BackendTypeD3D12:
		return "dx12"
	case wgpu.BackendTypeD3D11:
		return "dx11"
	case wgpu.BackendTypeOpenGL, wgpu.BackendTypeOpenGLES:
		return "gl"
	case wgpu.BackendTypeWebGPU:
		return "webgpu"
	case wgpu.BackendTypeNull:
		return "null"
	}
	return "unknown"
}

// rank orders adapters for the auto policy: hardware before emulation (discrete > integrated > unknown >
// cpu), then native APIs before GL, whose compute support in wgpu is the most limited.
func rank(a AdapterInfo) int {
	r := 0
	switch a.Type {
	case "discrete":
		r = 30
	case "integrated":
		r = 20
	case "unknown":
		r = 10
	}
	switch a.Backend {
	case "vulkan", "metal", "dx12":
		r += 2
	case "gl":
	default:
		r++
	}
	return r
}

// Choice is the outcome of adapter selection.
type Choice struct {
	Index  int    // the chosen adapter, -1 when none
	Reason string // why this adapter, or why none
}

// Choose applies the selection policy to a list from Adapters.
//
// selector "" or "auto" picks the best hardware adapter (discrete before integrated, native API before
// GL). When only CPU-type adapters (software rasterizers such as llvmpipe or WARP) exist it picks none,
// because they are slower than the CPU backend, unless force is set. A number picks that index; any
// other text picks the best adapter whose name, vendor or driver contains it (case-insensitive). An
// explicit selector is honoured even for a CPU-type adapter.
func Choose(adapters []AdapterInfo, selector string, force bool) (Choice, error) {
	selector = strings.TrimSpace(selector)
	if selector == "" || strings.EqualFold(selector, "auto") {
		return chooseAuto(adapters, force), nil
	}
	if i, err := strconv.Atoi(selector); err == nil {
		if i < 0 || i >= len(adapters) {
			return Choice{Index: -1}, fmt.Errorf("GPU adapter index %d out of range: %d adapter(s) found", i, len(adapters))
		}
		return Choice{Index: i, Reason: "selected by index"}, nil
	}
	needle := strings.ToLower(selector)
	var matches []AdapterInfo
	for _, a := range adapters {
		hay := strings.ToLower(a.Name + "\x00" + a.Vendor + "\x00" + a.Driver)
		if strings.Contains(hay, needle) {
			matches = append(matches, a)
		}
	}
	if len(matches) == 0 {
		names := make([]string, len(adapters))
		for i, a := range adapters {
			names[i] = a.String()
		}
		return Choice{Index: -1}, fmt.Errorf("no GPU adapter matches %q (found: %s)", selector, strings.Join(names, "; "))
	}
	best := bestOf(matches)
	return Choice{Index: best.Index, Reason: fmt.Sprintf("name matches %q", selector)}, nil
}

func chooseAuto(adapters []AdapterInfo, force bool) Choice {
	if len(adapters) == 0 {
		return Choice{Index: -1, Reason: "no WebGPU adapter found (no Vulkan, Metal or DirectX 12 driver?)"}
	}
	best := bestOf(adapters)
	if best.Type != "cpu" {
		return Choice{Index: best.Index, Reason: fmt.Sprintf("best hardware adapter (%s, %s)", best.Type, best.Backend)}
	}
	if force {
		return Choice{Index: best.Index, Reason: "only CPU-type adapters exist; used because the GPU was forced"}
	}
	return Choice{Index: -1, Reason: fmt.Sprintf("only CPU-type adapters exist (%s emulates a GPU in software and is slower than the CPU backend); pass --gpu to use it anyway", best.Name)}
}

// bestOf returns the highest-ranked adapter; among equals the system's high-performance pick wins, then
// enumeration order.
func bestOf(adapters []AdapterInfo) AdapterInfo {
	sorted := append([]AdapterInfo(nil), adapters...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ri, rj := rank(sorted[i]), rank(sorted[j])
		if ri != rj {
			return ri > rj
		}
		return sorted[i].HighPerformance && !sorted[j].HighPerformance
	})
	return sorted[0]
}
