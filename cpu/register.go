package cpu

import (
	"smolchat/engine"
	"smolchat/model"
)

func init() {
	engine.RegisterBackend("cpu", func(m *model.Model, o engine.BackendOptions) (engine.Backend, error) {
		num, err := ParseNumerics(o.Numerics)
		if err != nil {
			return nil, err
		}
		return New(m, Options{Threads: o.Threads, Context: o.Context, Numerics: num, KVMemory: o.KVMemory, Parallel: o.Parallel})
	})
}
