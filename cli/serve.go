package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"smolchat/engine"
	"smolchat/model/hub"
	"smolchat/server"
)

// serveOptions are the serve command's settings.
type serveOptions struct {
	model         *modelFlags
	modelsDir     string
	dataDir       string
	host          string
	port          int
	maxQueue      int
	parallel      int
	kvMemory      byteSize
	kvDiskMax     diskCap
	apiKey        string
	corsOrigin    string
	allowedHosts  string
	metricsPublic bool
	// writeTimeout drops a client that has stopped reading its answer (server.Config.StreamWriteTimeout).
	writeTimeout time.Duration
	// system is the system prompt of new chats: text, or @FILE to read it from a file.
	system string
}

// maxParallel bounds --parallel: each running sequence adds a row to every step and a full context to
// the KV memory's default.
const maxParallel = 64

func init() {
	var o *serveOptions
	register(&Command{
		Name:    "serve",
		Summary: "serve the browser chat and the OpenAI-compatible API (the default command)",
		Usage:   "[--model FILE] [--host HOST] [--port N] [--data-dir DIR] [--api-key KEY] [--allowed-hosts NAMES] [--cpu|--gpu] [--ctx N]",
		Flags:   func(fs *flag.FlagSet) { o = addServeFlags(fs) },
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return usageErr("unexpected argument %q", args[0])
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, env)
		},
	})
}

// addServeFlags declares serve's flags on fs and returns the options they fill.
func addServeFlags(fs *flag.FlagSet) *serveOptions {
	o := &serveOptions{model: addModelFlags(fs)}
	addModelsDirFlag(fs, &o.modelsDir)
	defData, err := server.DefaultDataDir()
	if err != nil {
		defData = ""
	}
	fs.StringVar(&o.dataDir, "data-dir", defData, "directory of the chat history database")
	fs.StringVar(&o.host, "host", "127.0.0.1",
		"address to listen on (0.0.0.0: every interface; set --api-key then, which guards the chat page, its history, the API and /metrics)")
	fs.IntVar(&o.port, "port", 8080, "port to listen on")
	fs.IntVar(&o.maxQueue, "max-queue", 8, "requests that may wait for the model; more are refused with 503")
	fs.IntVar(&o.parallel, "parallel", engine.DefaultParallel,
		"generations that run together, batched into one pass per token; more wait in the queue")
	fs.Var(&o.kvMemory, "kv-memory",
		"memory for the KV cache of every sequence, running and cached conversations, e.g. 4GiB; auto: room for --parallel full contexts and one more, each with a block to spare, at most a quarter of the machine's memory (on the GPU also at most what one storage binding holds per layer)")
	o.kvDiskMax = diskCap{v: engine.DefaultKVDiskMax, def: engine.DefaultKVDiskMax}
	fs.Var(&o.kvDiskMax, "kv-disk-max",
		"disk for cached conversations spilled from --kv-memory, in --data-dir's kv-cache, per model and backend (servers of different models can share a --data-dir; a second server of the same model and backend there runs without it): evicted and idle conversations, and all of them at exit, are written there and read back instead of evaluated again, after a restart too; 0 turns it off")
	fs.StringVar(&o.apiKey, "api-key", "",
		"require this key everywhere but /health: API clients send 'Authorization: Bearer KEY', browsers sign in with it once (sessions end on restart)")
	fs.StringVar(&o.corsOrigin, "cors-origin", "", "let this browser origin call the API (CORS), e.g. http://localhost:3000")
	fs.StringVar(&o.allowedHosts, "allowed-hosts", "",
		"comma-separated host names the server also answers to, e.g. a LAN name or a reverse proxy's (the listen address, "+
			"and localhost on loopback, always work); '*' accepts any, which lets web pages in through DNS rebinding")
	fs.BoolVar(&o.metricsPublic, "metrics-public", false, "leave /metrics open to clients without the --api-key key (for a scraper)")
	fs.StringVar(&o.system, "system", "", "system prompt of new chats in the browser: TEXT, or @FILE to read it from a file (each chat can change its own in Settings)")
	fs.DurationVar(&o.writeTimeout, "stream-write-timeout", 30*time.Second,
		"drop a client that takes none of its answer for this long, and cancel its generation to free the model")
	return o
}

// run serves until ctx ends. It listens at once and loads the model in the background, so the page
// opens right away and shows the loading progress.
func (o *serveOptions) run(ctx context.Context, env *Env) error {
	// The model's flags are checked now, not when the background load reaches them.
	if _, err := o.model.loadOptions(env, ""); err != nil {
		return err
	}
	switch {
	case o.port < 0 || o.port > 65535:
		return usageErr("--port %d is not a port number (0-65535)", o.port)
	case o.maxQueue < 1:
		return usageErr("--max-queue %d: at least one request must be able to wait", o.maxQueue)
	case o.parallel < 1 || o.parallel > maxParallel:
		return usageErr("--parallel %d: give 1 to %d generations", o.parallel, maxParallel)
	case o.writeTimeout <= 0:
		return usageErr("--stream-write-timeout %v: give a positive duration, e.g. 30s", o.writeTimeout)
	case o.dataDir == "":
		return usageErr("no directory for the chat history: set --data-dir")
	}
	if !isLoopback(o.host) && o.apiKey == "" {
		env.Log.Warn("the API is open to the network without an API key: anyone who can reach this port can use the model; set --api-key",
			"host", o.host)
	}

	cfg := o.config(env)
	var err error
	if cfg.System, err = readSystem(o.system); err != nil {
		return err
	}
	srv, err := server.New(cfg, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("listen on %s port %d (is another smolchat running? choose another --port): %w", o.host, o.port, err)
	}
	url := pageURL(ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	env.Log.Info("serving; the model is loading", "url", url, "data", o.dataDir)

	loadCtx, cancelLoad := context.WithCancel(ctx)
	loaded := make(chan *engine.Engine, 1)
	go func() {
		e, err := o.load(loadCtx, env, srv)
		if err != nil {
			if loadCtx.Err() == nil {
				env.Log.Error("loading the model failed; the page shows the error", "err", err)
				srv.SetLoadError(err)
			}
			loaded <- nil
			return
		}
		srv.SetGenerator(e)
		i := e.Info()
		env.Log.Info("ready", "url", url, "model", i.Model, "backend", i.Backend, "adapter", i.Device, "ctx", i.Context)
		loaded <- e
	}()

	select {
	case <-ctx.Done():
		env.Log.Info("shutting down")
	case err = <-served:
		err = fmt.Errorf("serving on %s: %w", url, err)
	}
	cancelLoad()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("shutting down: %w", serr)
	}
	select {
	case e := <-loaded:
		if e != nil {
			if cerr := e.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing the model: %w", cerr)
			}
		}
	case <-time.After(5 * time.Second):
		// A backend may not notice the cancellation until its current step ends; exiting frees it anyway.
		env.Log.Warn("the model is still loading; exiting without waiting for it")
	}
	return err
}

// config is the server's configuration from the flags.
func (o *serveOptions) config(env *Env) server.Config {
	var allowed []string
	for h := range strings.SplitSeq(o.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			allowed = append(allowed, h)
		}
	}
	if o.host != "" && net.ParseIP(o.host) == nil {
		// --host NAME listens on the address NAME resolves to; the browser will send NAME.
		allowed = append(allowed, o.host)
	}
	return server.Config{DataDir: o.dataDir, MaxQueue: o.maxQueue, APIKey: o.apiKey, CORSOrigin: o.corsOrigin,
		AllowedHosts: allowed, MetricsPublic: o.metricsPublic, StreamWriteTimeout: o.writeTimeout, Log: env.Log}
}

// load finds the model (--model, else the default model, downloaded if missing) and loads it,
// reporting progress to the page.
func (o *serveOptions) load(ctx context.Context, env *Env, srv *server.Server) (*engine.Engine, error) {
	path := *o.model.model
	if path == "" {
		srv.SetLoadProgress(0, "looking for "+hub.DefaultFile)
		if _, err := os.Stat(hub.DefaultModelPath(o.modelsDir)); err != nil {
			srv.SetLoadProgress(0, "downloading "+hub.DefaultFile+" (progress in the terminal)")
		}
		p, err := hub.EnsureDefault(ctx, hub.Options{ModelsDir: o.modelsDir, Progress: env.Stderr})
		if err != nil {
			return nil, fmt.Errorf("no --model given, and the default model is not available: %w", err)
		}
		path = p
	}
	lo, err := o.model.loadOptions(env, path)
	if err != nil {
		return nil, err
	}
	lo.Parallel, lo.KVMemory = o.parallel, int64(o.kvMemory)
	lo.KVDisk, lo.KVDiskMax = filepath.Join(o.dataDir, "kv-cache"), o.kvDiskMax.v
	termProgress := lo.Progress
	lo.Progress = func(frac float64, msg string) {
		srv.SetLoadProgress(frac, msg)
		termProgress(frac, msg)
	}
	return engine.Load(ctx, lo)
}

// isLoopback reports whether host only accepts connections from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pageURL is the address to open in a browser for a listener.
func pageURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// readSystem reads --system: the text itself, or the contents of the file named after an @.
func readSystem(arg string) (string, error) {
	name, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return strings.TrimSpace(arg), nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", usageErr("--system %s: %v", arg, err)
	}
	return strings.TrimSpace(string(b)), nil
}
