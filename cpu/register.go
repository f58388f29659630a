package cpu

import (
	"smolchat/engine"
	"smolchat/model"
)

func init() {
	engine.RegisterBackend("cpu", func(m *model.Model, o engine.BackendOptions) (engine.Backend, error) {
		return New(m, Options{Threads: o.Threads, Context: o.Context, Exact: o.Exact})
	})
}
