package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"smolchat/engine"
	"smolchat/model"

	// The backends register themselves with the engine.
	"smolchat/cpu"
	"smolchat/gpu"
)

// modelFlags are the flags of every command that loads a model.
type modelFlags struct {
	model      *string
	cpu        *bool
	gpu        *bool
	adapter    *string
	ctx        *int
	threads    *int
	numerics   *string
	tune       *string
	tuneFile   *string
	tuneBudget *time.Duration
	rope       *string
	ropeFac    *float64
	yarnOrig   *int

	parallel int // sequences the KV budget is sized for (0 = engine.DefaultParallel); set by a command, not a flag
}

func addModelFlags(fs *flag.FlagSet) *modelFlags {
	return &modelFlags{
		model:      fs.String("model", "", "GGUF model `file`"),
		cpu:        fs.Bool("cpu", false, "run on the CPU even when a GPU is available"),
		gpu:        fs.Bool("gpu", false, "run on the GPU, even a software adapter such as lavapipe (fails instead of falling back)"),
		adapter:    fs.String("gpu-adapter", "", "GPU adapter to use, by name substring or index (see 'smolchat devices')"),
		ctx:        fs.Int("ctx", engine.DefaultContext, "context window in tokens (capped by the model's)"),
		threads:    fs.Int("threads", 0, "CPU threads (0 = one per core)"),
		numerics:   fs.String("numerics", "fast", "CPU backend rounding: fast (8-bit activations as llama.cpp), llama (also llama.cpp's half-precision attention sums), exact (float32, as the GPU)"),
		tune:       fs.String("gpu-tune", "auto", "GPU kernel tuning: auto (time the kernel variants on the first load on an adapter and keep the fastest in --gpu-tune-file; later loads read them), off (built-in choices), redo (time them again)"),
		tuneFile:   fs.String("gpu-tune-file", "", "`file` keeping the GPU tuning's choices (default: smolchat/gpu-tune.json in the user's cache directory)"),
		tuneBudget: fs.Duration("gpu-tune-budget", 20*time.Second, "the most time one load spends tuning; the shapes not reached are tuned at the next load"),
		rope:       fs.String("rope-scaling", "", "RoPE scaling: none, linear or yarn (default: the model file's), as llama.cpp's flag"),
		ropeFac:    fs.Float64("rope-scale", 0, "RoPE context scaling factor: with --rope-scaling yarn and 2, a model trained on 65536 positions takes --ctx up to 131072 (0 = the file's)"),
		yarnOrig:   fs.Int("yarn-orig-ctx", 0, "YaRN: the model's original context (0 = the file's, else its trained context)"),
	}
}

// backend is the --cpu/--gpu choice as an engine backend name.
func (f *modelFlags) backend() (string, error) {
	switch {
	case *f.cpu && *f.gpu:
		return "", usageErr("--cpu and --gpu are exclusive")
	case *f.cpu:
		return "cpu", nil
	case *f.gpu:
		return "gpu", nil
	}
	return "auto", nil
}

// loadOptions are the engine's options for the model at path, the flags checked.
func (f *modelFlags) loadOptions(env *Env, path string) (engine.LoadOptions, error) {
	b, err := f.backend()
	if err != nil {
		return engine.LoadOptions{}, err
	}
	if _, err := cpu.ParseNumerics(*f.numerics); err != nil {
		return engine.LoadOptions{}, usageErr("--numerics %q: want fast, llama or exact", *f.numerics)
	}
	if _, err := gpu.ParseTuneMode(*f.tune); err != nil {
		return engine.LoadOptions{}, usageErr("--gpu-tune %q: want auto, off or redo", *f.tune)
	}
	if *f.tuneBudget <= 0 {
		return engine.LoadOptions{}, usageErr("--gpu-tune-budget %v: give a positive duration, e.g. 20s", *f.tuneBudget)
	}
	rope, err := f.ropeOptions()
	if err != nil {
		return engine.LoadOptions{}, err
	}
	return engine.LoadOptions{Path: path, Backend: b, Adapter: *f.adapter, Context: *f.ctx, Threads: *f.threads, Parallel: f.parallel,
		Numerics: *f.numerics, Rope: rope, Tune: *f.tune, TuneFile: *f.tuneFile, TuneBudget: *f.tuneBudget, Log: env.Log, Progress: loadProgress(env.Stderr)}, nil
}

// load opens the model named by --model on the chosen backend.
func (f *modelFlags) load(env *Env) (*engine.Engine, error) {
	if *f.model == "" {
		return nil, usageErr("--model FILE is required")
	}
	o, err := f.loadOptions(env, *f.model)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	e, err := engine.Load(context.Background(), o)
	if err != nil {
		return nil, err
	}
	info := e.Info()
	env.Log.Info("model loaded", "model", info.Model, "arch", info.Arch, "quant", info.Quant, "backend", info.Backend,
		"device", info.Device, "ctx", info.Context, "took", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// ropeOptions reads --rope-scaling, --rope-scale and --yarn-orig-ctx.
func (f *modelFlags) ropeOptions() (model.RopeOptions, error) {
	s, err := model.ParseRopeScaling(*f.rope)
	if err != nil {
		return model.RopeOptions{}, usageErr("--rope-scaling %q: want none, linear or yarn", *f.rope)
	}
	return model.RopeOptions{Scaling: s, Factor: *f.ropeFac, OrigContext: *f.yarnOrig}, nil
}

// thinkFlag reads --think/--no-think into the engine's tri-state.
func thinkFlag(think, noThink bool) (*bool, error) {
	switch {
	case think && noThink:
		return nil, usageErr("--think and --no-think are exclusive")
	case think:
		v := true
		return &v, nil
	case noThink:
		v := false
		return &v, nil
	}
	return nil, nil
}

func fmtRate(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

// flagFloat is a float32 default as the float64 a flag holds, without float32's binary tail, so that
// usage text says 0.6 rather than 0.6000000238418579.
func flagFloat(x float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return v
}
