// Package server is smolchat's HTTP face: the browser chat (server-rendered HTML, htmx, Server-Sent
// Events), an OpenAI-compatible API, health and Prometheus metrics. It serves one model to many clients:
// up to the engine's Parallel generations run together (the engine batches them), the others wait in
// arrival order in a bounded queue.
//
// The server can start before the model is loaded, so the page opens at once and shows the loading
// progress: New accepts a nil Generator, SetLoadProgress reports progress, and SetGenerator makes the
// model available.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/template/html/v2"
	"github.com/valyala/fasthttp"

	"smolchat/engine"
	"smolchat/server/markdown"
	"smolchat/server/store"
	"smolchat/views"
)

// Generator is the model as the server uses it; *engine.Engine implements it.
type Generator interface {
	Info() engine.Info
	Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error)
	Complete(ctx context.Context, prompt string, p engine.GenParams, emit func(engine.Delta) error) (engine.Result, error)
	CountChatTokens(msgs []engine.Message, think *bool, tools ...json.RawMessage) (int, error)
}

// The engine is what the server runs in production.
var _ Generator = (*engine.Engine)(nil)

// Config configures a Server. Zero values take the defaults named on each field.
type Config struct {
	// DataDir holds the chat history database (smolchat.db). Required.
	DataDir string
	// MaxQueue is how many requests may wait for the model while it is busy; more are refused with
	// 503 and Retry-After. Default 8.
	MaxQueue int
	// APIKey, when set, is required on every route but /health and /assets/: as a Bearer token from API
	// clients, and from the browser at the sign-in page, which trades it for a session cookie.
	APIKey string
	// MetricsPublic leaves /metrics open when APIKey is set, for a scraper without the key.
	MetricsPublic bool
	// AllowedHosts are Host names the server answers to besides its listen address (and loopback names
	// when that is loopback, or IP literals when it is every interface); "*" allows any. See hosts.go.
	AllowedHosts []string
	// CORSOrigin, when set, allows that browser origin ("*" for any) to call /v1 and /health.
	CORSOrigin string
	// BodyLimit caps request bodies in bytes. Default 1 MiB.
	BodyLimit int
	// MaxMessages caps the messages of one API request. Default 1024.
	MaxMessages int
	// StreamWriteTimeout drops a connection whose writes make no progress for this long: a client that
	// stopped reading. Its stream's generation is cancelled, freeing the model; a browser answer keeps
	// what was generated, marked cancelled. Default 30 s.
	StreamWriteTimeout time.Duration
	// System is the system prompt of new chats (serve --system); it takes the place of the one saved as
	// the default in the settings panel. Empty: that one, if any.
	System string
	// Log receives the server's logs. Default slog.Default().
	Log *slog.Logger

	// signInDelay replaces defaultSignInDelay, the wait before a wrong key is answered (tests shorten it).
	signInDelay time.Duration
	// now replaces time.Now as the clock of sessions and sign-in limits (tests move it).
	now func() time.Time
}

const (
	defaultMaxQueue     = 8
	defaultBodyLimit    = 1 << 20
	defaultMaxMessages  = 1024
	defaultWriteTimeout = 30 * time.Second
	// retryAfter is the Retry-After, in seconds, of a 503 for a full queue or a loading model.
	retryAfter = "5"
)

// Server is the chat and API server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	app     *fiber.App
	views   *html.Engine
	store   history
	md      *markdown.Renderer
	queue   *queue
	metrics *metrics
	assets  *assetSet
	started time.Time

	model atomic.Pointer[loaded]
	load  atomic.Pointer[loadState]

	// base is the parent of every generation's context; Shutdown cancels it.
	base     context.Context
	stopAll  context.CancelCauseFunc
	closing  atomic.Bool
	shutOnce sync.Once

	streamsMu sync.Mutex
	streams   map[string]*uiStream // browser generations by stream ID
	streamSeq uint64               // the number of the last stream started
	changing  map[string]bool      // conversations whose change is being accepted (lockConversation)
	unsaved   unsavedAnswers       // answers a failed write kept in memory

	conns connTracker

	hosts    atomic.Pointer[hostPolicy]
	sessions *sessionStore
	attempts *attemptLimiter
}

// history is the chat history as the server uses it. *store.Store is the one in production; tests wrap it
// to make writes fail as on a full disk.
type history interface {
	Conversations(ctx context.Context, limit int) ([]store.Conversation, error)
	Conversation(ctx context.Context, id string) (store.Conversation, error)
	CreateConversation(ctx context.Context, c store.Conversation, first store.Message) (store.Conversation, store.Message, error)
	UpdateSettings(ctx context.Context, c store.Conversation) error
	DeleteConversation(ctx context.Context, id string) error
	AddMessage(ctx context.Context, m store.Message) (store.Message, error)
	AddTurn(ctx context.Context, c store.Conversation, m store.Message) (store.Message, error)
	ReplaceMessage(ctx context.Context, old int64, m store.Message) (store.Message, error)
	EditMessage(ctx context.Context, conversationID string, id int64, content string) (store.Message, error)
	Messages(ctx context.Context, conversationID string) ([]store.Message, error)
	Message(ctx context.Context, conversationID string, id int64) (store.Message, error)
	AllMessages(ctx context.Context, conversationID string) ([]store.Message, error)
	ShowVersion(ctx context.Context, conversationID string, id int64) error
	Search(ctx context.Context, query string, limit int) ([]store.Hit, error)
	Rename(ctx context.Context, id, title string) error
	ImportConversation(ctx context.Context, c store.Conversation, msgs []store.Message) (store.Conversation, error)
	Presets(ctx context.Context) ([]store.Preset, error)
	SavePreset(ctx context.Context, p store.Preset) error
	DeletePreset(ctx context.Context, name string) error
	NewChatDefaults(ctx context.Context) (store.Preset, bool, error)
	SaveNewChatDefaults(ctx context.Context, p store.Preset) error
	Close() error
}

// loaded is a ready model.
type loaded struct {
	gen Generator
}

// info describes the model and the backend it runs on now: a lost GPU's replacement shows at once.
func (l *loaded) info() engine.Info { return l.gen.Info() }

// loadState is the progress of loading the model, shown while it is not ready.
type loadState struct {
	frac float64
	msg  string
	err  error
}

// errShutdown is the cause of generations cancelled by Shutdown.
var errShutdown = errors.New("the server is shutting down")

// New builds a server storing its history in cfg.DataDir. gen may be nil while the model loads.
func New(cfg Config, gen Generator) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: Config.DataDir is required")
	}
	if cfg.MaxQueue < 0 || cfg.BodyLimit < 0 || cfg.MaxMessages < 0 || cfg.StreamWriteTimeout < 0 {
		return nil, fmt.Errorf("server: negative limit in config (max queue %d, body limit %d, max messages %d, stream write timeout %v)",
			cfg.MaxQueue, cfg.BodyLimit, cfg.MaxMessages, cfg.StreamWriteTimeout)
	}
	if err := checkSystem(cfg.System); err != nil {
		return nil, fmt.Errorf("server: --system: %w; shorten it", err)
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = defaultMaxQueue
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = defaultBodyLimit
	}
	if cfg.MaxMessages == 0 {
		cfg.MaxMessages = defaultMaxMessages
	}
	if cfg.StreamWriteTimeout == 0 {
		cfg.StreamWriteTimeout = defaultWriteTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.signInDelay == 0 {
		cfg.signInDelay = defaultSignInDelay
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	allowed, err := parseAllowedHosts(cfg.AllowedHosts)
	if err != nil {
		return nil, err
	}
	cfg.AllowedHosts = allowed
	if slices.Contains(allowed, "*") {
		cfg.Log.Warn("allowed hosts '*': any Host header is accepted, so a web page can reach this server through DNS rebinding; list this server's names instead")
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "smolchat.db"))
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		store:    st,
		md:       markdown.New(),
		metrics:  newMetrics(),
		assets:   assets,
		started:  time.Now(),
		streams:  map[string]*uiStream{},
		sessions: newSessionStore(cfg.now),
		attempts: newAttemptLimiter(cfg.now),

		changing: map[string]bool{},
	}
	s.hosts.Store(newHostPolicy(cfg.AllowedHosts, nil))
	s.conns.writeTimeout = cfg.StreamWriteTimeout
	s.queue = newQueue(cfg.MaxQueue, s.metrics.queueDepth.Set)
	s.metrics.reg.MustRegister(s.schedulerMetrics()...)
	s.base, s.stopAll = context.WithCancelCause(context.Background())
	s.load.Store(&loadState{msg: "waiting for the model"})
	s.views = html.NewFileSystem(views.FS(), ".html")
	s.views.AddFuncMap(s.templateFuncs())
	if err := s.views.Load(); err != nil {
		st.Close()
		return nil, fmt.Errorf("server: parsing templates: %w", err)
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "smolchat",
		DisableStartupMessage: true,
		Immutable:             true, // values from a request outlive its handler (streams, queued work)
		// fasthttp answers a body over its limit by closing the connection unread, which most clients
		// see as a reset rather than a 413. So it reads up to 4× the limit, and limitBody refuses those
		// with a proper 413; only grossly oversized bodies get the reset.
		BodyLimit:    max(4*cfg.BodyLimit, maxAttachmentBytes+1<<20),
		ReadTimeout:  time.Minute,
		IdleTimeout:  2 * time.Minute,
		Views:        s.views,
		ErrorHandler: s.handleError,
	})
	s.routes()
	// Fiber builds a list that every error handler reads lazily, in the first Render; two first requests
	// at once race on it (the race detector caught an error page rendering while another connection's
	// error was handled). Rendering once here builds it before any request arrives.
	ctx := s.app.AcquireCtx(&fasthttp.RequestCtx{})
	err = ctx.Render("partials/notice", noticeView{Kind: "info", Message: "ready"})
	s.app.ReleaseCtx(ctx)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server: rendering templates: %w", err)
	}
	if gen != nil {
		s.SetGenerator(gen)
	}
	return s, nil
}

// routes registers the middleware and the routes. Fiber runs them in the order they are registered, so
// the routes above requireAuth are the public ones.
func (s *Server) routes() {
	app := s.app
	app.Use(s.refuseAmbiguousFraming, s.recoverPanics, s.checkHost, s.countRequests, s.securityHeaders, s.refuseWhileClosing, s.limitBody)
	if s.cfg.CORSOrigin != "" {
		c := cors.New(cors.Config{AllowOrigins: s.cfg.CORSOrigin, AllowHeaders: "Authorization, Content-Type",
			AllowMethods: "GET, POST, OPTIONS"})
		app.Use("/v1", c)
		app.Use("/health", c)
	}

	app.Get("/health", s.handleHealth)
	app.Get("/assets/*", s.handleAsset)
	metrics := s.handleMetrics()
	if s.cfg.MetricsPublic {
		app.Get("/metrics", metrics)
	}

	v1 := app.Group("/v1", s.requireAPIKey, requireJSON)
	v1.Get("/models", s.handleModels)
	v1.Post("/chat/completions", s.handleChatCompletions)
	v1.Post("/completions", s.handleCompletions)
	v1.All("/*", func(c *fiber.Ctx) error {
		return apiErr(fiber.StatusNotFound, "not_found_error", "", "unknown endpoint %s %s", c.Method(), c.Path())
	})

	if s.cfg.APIKey != "" {
		app.Get("/signin", s.handleSignInPage)
		app.Post("/signin", s.checkCSRF, s.handleSignIn)
		app.Post("/signout", s.checkCSRF, s.handleSignOut)
	} else {
		app.Get("/signin", func(c *fiber.Ctx) error { return c.Redirect("/", fiber.StatusSeeOther) })
	}
	app.Use(s.requireAuth)

	if !s.cfg.MetricsPublic {
		app.Get("/metrics", metrics)
	}
	app.Get("/", s.handleIndex)
	app.Get("/c/:id", s.handleConversation)
	app.Get("/status", s.handleStatus)
	app.Get("/slots", s.handleSlots)
	app.Get("/c/:id/export/:format", s.handleExport)
	app.Get("/c/:id/m/:mid", s.handleMessage)
	app.Get("/c/:id/m/:mid/edit", s.handleEditForm)
	app.Get("/c/:id/rename", s.handleRenameForm)
	app.Get("/c/:id/item", s.handleSidebarItem)
	app.Get("/search", s.handleSearch)
	app.Get("/stream/:sid", s.handleStream)

	ui := app.Group("", s.checkCSRF)
	ui.Post("/chat", s.handleSend)
	ui.Post("/attach", s.handleAttach)
	ui.Post("/settings", s.handleSettings)
	ui.Post("/settings/defaults", s.handleDefaults)
	ui.Post("/presets", s.handlePresetSave)
	ui.Post("/presets/apply", s.handlePresetApply)
	ui.Post("/presets/delete", s.handlePresetDelete)
	ui.Post("/c/:id/regenerate", s.handleRegenerate)
	ui.Post("/c/:id/m/:mid", s.handleEdit)
	ui.Post("/c/:id/m/:mid/show", s.handleShowVersion)
	ui.Post("/c/:id/m/:mid/continue", s.handleContinue)
	ui.Delete("/c/:id", s.handleDelete)
	ui.Post("/c/:id/rename", s.handleRename)
	ui.Post("/import", s.handleImport)
	ui.Post("/stream/:sid/cancel", s.handleCancel)
	ui.Post("/stream/:sid/save", s.handleSaveRetry)
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.hosts.Store(newHostPolicy(s.cfg.AllowedHosts, ln.Addr()))
	return s.app.Listener(s.conns.wrap(ln))
}

// Shutdown stops accepting requests, ends open streams with an event, cancels queued and running
// generations, waits for connections to finish (until ctx ends), and closes the history database.
//
// A connection that never sent a request is closed by fasthttp once it is 5 seconds old, so give ctx at
// least that long.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutOnce.Do(func() {
		s.closing.Store(true)
		s.stopAll(errShutdown)
		// Connections that never carried a request would hold the shutdown to its deadline; close them
		// until it is done (new ones may be accepted until the listener closes).
		done := make(chan struct{})
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				s.conns.closeSilent()
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
		}()
		err = s.app.ShutdownWithContext(ctx)
		close(done)
		s.waitStreams(ctx)
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// SetGenerator makes gen the model the server uses (nil marks it not ready again).
func (s *Server) SetGenerator(gen Generator) {
	if gen == nil {
		s.model.Store(nil)
		return
	}
	s.queue.setSlots(gen.Info().Parallel)
	s.model.Store(&loaded{gen: gen})
	s.load.Store(&loadState{frac: 1, msg: "ready"})
}

// SetLoadProgress reports model loading progress (frac in [0, 1]) for /health and the page.
func (s *Server) SetLoadProgress(frac float64, msg string) {
	s.load.Store(&loadState{frac: min(max(frac, 0), 1), msg: msg})
}

// SetLoadError reports that loading the model failed; the page and /health show err.
func (s *Server) SetLoadError(err error) {
	prev := s.load.Load()
	s.load.Store(&loadState{frac: prev.frac, msg: prev.msg, err: err})
}

// ready returns the model, or nil while it is loading.
func (s *Server) ready() *loaded { return s.model.Load() }

// waitStreams waits for browser streams to finish after their generations were cancelled; their final
// events and saved answers must land before the database closes.
func (s *Server) waitStreams(ctx context.Context) {
	for {
		s.streamsMu.Lock()
		n := 0
		for _, st := range s.streams {
			if st.started.Load() && !st.ended() {
				n++
			}
		}
		s.streamsMu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// DefaultDataDir is os.UserConfigDir()/smolchat, or os.UserCacheDir()/smolchat where there is no config
// directory.
func DefaultDataDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		if dir, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("no user config or cache directory for the chat history (set --data-dir): %w", err)
		}
	}
	return filepath.Join(dir, "smolchat"), nil
}
