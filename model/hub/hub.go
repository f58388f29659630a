// Package hub downloads GGUF models from the Hugging Face Hub into the local model directory and lists
// the models found there.
//
// A download asks the Hub's resolve endpoint for the file's metadata first (a HEAD that does not follow
// the redirect to the CDN, as huggingface_hub does): the redirect carries the file's size (X-Linked-Size)
// and, for LFS files, its sha256 (X-Linked-Etag). The body then streams into NAME.partial beside the
// target, resuming with HTTP Range after a cut connection or an interrupted run, and the file is renamed
// into place only once its size and sha256 match. A truncated or corrupt file never sits where a model
// is expected.
package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// The default model: SmolLM3-3B quantized to Q4_K_M.
const (
	DefaultRepo     = "bartowski/HuggingFaceTB_SmolLM3-3B-GGUF"
	DefaultFile     = "HuggingFaceTB_SmolLM3-3B-Q4_K_M.gguf"
	DefaultRevision = "main"
	DefaultEndpoint = "https://huggingface.co"
)

// Errors a download can end with; test for them with errors.Is. The wrapping error says what to do.
var (
	ErrOffline      = errors.New("cannot reach the Hugging Face Hub")
	ErrUnauthorized = errors.New("not authorized by the Hugging Face Hub")
	ErrNotFound     = errors.New("no such repo/file")
	ErrChecksum     = errors.New("downloaded file does not match the Hub's checksum")
)

// Options says what to download and where. Zero fields take defaults: Endpoint from $HF_ENDPOINT, else
// https://huggingface.co; Repo and File the default model; Revision "main"; Token from $HF_TOKEN, else
// the token file `hf auth login` writes; ModelsDir DefaultModelsDir(); HTTPClient http.DefaultClient.
type Options struct {
	Endpoint  string
	Repo      string // "owner/name"
	File      string // path of the file inside the repo
	Revision  string // branch, tag or commit
	Token     string // Hugging Face access token, sent as a Bearer token to the Hub only
	ModelsDir string
	// Progress receives the progress bar (redrawn in place when it is a terminal, a line every few
	// seconds otherwise) and notes about retries; nil shows nothing.
	Progress   io.Writer
	HTTPClient *http.Client

	retries *retryPolicy // nil: defaultRetries (resolve)
}

// DefaultModelsDir is os.UserCacheDir()/smolchat/models.
func DefaultModelsDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory for models (set --models-dir): %w", err)
	}
	return filepath.Join(dir, "smolchat", "models"), nil
}

// DefaultModelPath is where the default model lives in modelsDir (DefaultModelsDir() when empty). When
// no models directory can be determined it returns the bare file name.
func DefaultModelPath(modelsDir string) string {
	if modelsDir == "" {
		modelsDir, _ = DefaultModelsDir()
	}
	return filepath.Join(modelsDir, DefaultFile)
}

// EnsureDefault returns the path of the model opts names (the default model when Repo and File are
// empty) if it is already in the models directory, without touching the network, and downloads it
// otherwise.
func EnsureDefault(ctx context.Context, opts Options) (string, error) {
	o, err := opts.resolve()
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(o.target()); err == nil && st.Mode().IsRegular() {
		return o.target(), nil
	}
	return download(ctx, o)
}

// Download fetches the file opts names into the models directory and returns its path. A file already
// there is kept when its size and sha256 match the Hub's, and replaced otherwise. An interrupted
// download leaves NAME.partial behind, which the next call resumes.
func Download(ctx context.Context, opts Options) (string, error) {
	o, err := opts.resolve()
	if err != nil {
		return "", err
	}
	return download(ctx, o)
}

// resolve fills in defaults and validates; the result has every field set.
func (o Options) resolve() (Options, error) {
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("hub endpoint %q is not an http(s) URL (check HF_ENDPOINT)", o.Endpoint)
	}
	if o.Repo == "" && o.File == "" {
		o.Repo, o.File = DefaultRepo, DefaultFile
	}
	if !validRepo.MatchString(o.Repo) || strings.Contains(o.Repo, "..") {
		return o, fmt.Errorf("repository %q is not a Hugging Face repo id like owner/name", o.Repo)
	}
	if err := checkRepoFile(o.File); err != nil {
		return o, err
	}
	if o.Revision == "" {
		o.Revision = DefaultRevision
	}
	if o.Token == "" {
		o.Token = tokenFromEnv()
	}
	if o.ModelsDir == "" {
		if o.ModelsDir, err = DefaultModelsDir(); err != nil {
			return o, err
		}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.retries == nil {
		r := defaultRetries
		o.retries = &r
	}
	return o, nil
}

// validRepo is a repo id: a name, or owner/name, of letters, digits, '-', '_' and '.'.
var validRepo = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// checkRepoFile rejects file paths that could escape the repository or the models directory.
func checkRepoFile(file string) error {
	if file == "" {
		return fmt.Errorf("no file name given (--hf-file)")
	}
	if strings.ContainsAny(file, "\\\x00") || strings.HasPrefix(file, "/") {
		return fmt.Errorf("file %q is not a path inside a repository", file)
	}
	for _, seg := range strings.Split(file, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("file %q is not a path inside a repository", file)
		}
	}
	return nil
}

// target is where the downloaded file goes: the file's base name in the models directory.
func (o Options) target() string { return filepath.Join(o.ModelsDir, path.Base(o.File)) }

// resolveURL is {endpoint}/{repo}/resolve/{revision}/{file}, with the revision escaped as one segment
// (so "refs/pr/1" works) and each segment of the file escaped.
func (o Options) resolveURL() string {
	segs := strings.Split(o.File, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return o.Endpoint + "/" + o.Repo + "/resolve/" + url.PathEscape(o.Revision) + "/" + strings.Join(segs, "/")
}

// tokenFromEnv finds a Hugging Face token the way huggingface_hub does: $HF_TOKEN, then the token file
// ($HF_TOKEN_PATH, else $HF_HOME/token, where HF_HOME defaults to $XDG_CACHE_HOME/huggingface or
// ~/.cache/huggingface).
func tokenFromEnv() string {
	if t := strings.TrimSpace(os.Getenv("HF_TOKEN")); t != "" {
		return t
	}
	file := os.Getenv("HF_TOKEN_PATH")
	if file == "" {
		home := os.Getenv("HF_HOME")
		if home == "" {
			if xdg := os.Getenv("XDG_CACHE_HOME"); xdg != "" {
				home = filepath.Join(xdg, "huggingface")
			} else if h, err := os.UserHomeDir(); err == nil {
				home = filepath.Join(h, ".cache", "huggingface")
			}
		}
		if home == "" {
			return ""
		}
		file = filepath.Join(home, "token")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
