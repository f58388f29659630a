package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub stands in for huggingface.co and its CDN: the resolve endpoint answers HEAD and GET with a
// 302 to a second server carrying X-Linked-Size and X-Linked-Etag, as the real Hub does for LFS files,
// and the CDN serves the body with Range support.
type fakeHub struct {
	t          *testing.T
	repo, file string
	body       []byte
	sha        string // advertised in X-Linked-Etag
	size       int64  // advertised in X-Linked-Size
	token      string // required Bearer token; "" for a public repo

	mu sync.Mutex
	// cdnMode: "" serves; "cut-once" drops the first GET halfway; "cut-then-down" does that, then
	// answers 503; "stall-once" sends half of the first GET, then nothing until the client gives up.
	cdnMode     string
	ignoreRange bool // answer every GET with the whole file
	cdnETag     string
	hubFail     int // answer this many resolve requests with 503
	hubReqs     []logged
	cdnReqs     []logged

	hub, cdn *httptest.Server
}

type logged struct {
	method, path, rng, ifRange, auth string
	status                           int
}

func newFakeHub(t *testing.T, repo, file string, size int) *fakeHub {
	t.Helper()
	body := make([]byte, size)
	rand.Read(body)
	sum := sha256.Sum256(body)
	h := &fakeHub{t: t, repo: repo, file: file, body: body, sha: hex.EncodeToString(sum[:]),
		size: int64(size), cdnETag: `"cdn-v1"`}
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.cdn.Close)
	return h
}

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	l := logged{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization")}
	fail := h.hubFail > 0
	h.hubFail--
	h.mu.Unlock()
	status := func() int {
		if fail {
			return http.StatusServiceUnavailable
		}
		if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			w.Header().Set("X-Error-Message", "Repository not found")
			return http.StatusUnauthorized
		}
		if r.URL.Path != "/"+h.repo+"/resolve/main/"+h.file {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			return http.StatusNotFound
		}
		w.Header().Set("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
		w.Header().Set("X-Linked-Size", strconv.FormatInt(h.size, 10))
		w.Header().Set("X-Linked-Etag", `"`+h.sha+`"`)
		w.Header().Set("ETag", `"not-the-file-hash"`) // the redirect's own etag, which must be ignored
		w.Header().Set("Location", h.cdn.URL+"/blobs/"+h.sha+"?signature=xyz")
		return http.StatusFound
	}()
	w.WriteHeader(status)
	l.status = status
	h.mu.Lock()
	h.hubReqs = append(h.hubReqs, l)
	h.mu.Unlock()
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	mode, etag := h.cdnMode, h.cdnETag
	switch mode {
	case "cut-once", "stall-once":
		h.cdnMode = ""
	case "cut-then-down":
		h.cdnMode = "down"
	}
	if h.ignoreRange {
		r.Header.Del("Range")
	}
	// A request is logged as it arrives, so the log keeps the order the client sent them in (a stalled
	// GET's handler returns only once the server notices the client hung up, which may be after the
	// resumed GET is answered); its status is filled in when the handler writes it.
	h.cdnReqs = append(h.cdnReqs, logged{method: r.Method, path: r.URL.Path, rng: r.Header.Get("Range"),
		ifRange: r.Header.Get("If-Range"), auth: r.Header.Get("Authorization")})
	i := len(h.cdnReqs) - 1
	h.mu.Unlock()
	rec := &recorder{ResponseWriter: w, left: -1, stall: mode == "stall-once", done: r.Context().Done(),
		onStatus: func(code int) {
			h.mu.Lock()
			h.cdnReqs[i].status = code
			h.mu.Unlock()
		}}
	switch mode {
	case "cut-once", "cut-then-down", "stall-once":
		rec.left = len(h.body) / 2
	case "down":
		rec.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(rec, r, "", time.Time{}, bytes.NewReader(h.body))
}

// recorder notes the status and, when left >= 0, drops the connection after left body bytes, or with
// stall set goes silent until the client hangs up.
type recorder struct {
	http.ResponseWriter
	status   int
	left     int
	stall    bool
	done     <-chan struct{}
	onStatus func(code int) // called with the status when it is written
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.onStatus(code)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.left >= 0 && len(p) >= r.left {
		r.ResponseWriter.Write(p[:r.left])
		r.ResponseWriter.(http.Flusher).Flush()
		if r.stall {
			<-r.done
		}
		panic(http.ErrAbortHandler) // the server closes the connection mid-body
	}
	if r.left >= 0 {
		r.left -= len(p)
	}
	return r.ResponseWriter.Write(p)
}

func (h *fakeHub) requests() (hub, cdn []logged) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logged(nil), h.hubReqs...), append([]logged(nil), h.cdnReqs...)
}

// options downloads this fake's file into dir.
func (h *fakeHub) options(dir string, progress *bytes.Buffer) Options {
	tr := &http.Transport{}
	h.t.Cleanup(tr.CloseIdleConnections)
	o := Options{Endpoint: h.hub.URL, Repo: h.repo, File: h.file, ModelsDir: dir, HTTPClient: &http.Client{Transport: tr},
		retries: instantRetries()}
	if progress != nil {
		o.Progress = progress
	}
	return o
}

// instantRetries are the default retries without their pauses, for a test's own downloads.
func instantRetries() *retryPolicy {
	r := defaultRetries
	r.delay = func(int) time.Duration { return time.Millisecond }
	return &r
}

// quiet keeps the developer's own Hugging Face settings out of the tests.
func quiet(t *testing.T) {
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_ENDPOINT", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(t.TempDir(), "no-token"))
}

const testRepo, testFile = "acme/tiny-GGUF", "tiny-Q4_K_M.gguf"

// checkDownloaded fails unless dir holds exactly the model and no partial download.
func checkDownloaded(t *testing.T, h *fakeHub, path, dir string) {
	t.Helper()
	if want := filepath.Join(dir, filepath.Base(h.file)); path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, h.body) {
		t.Errorf("downloaded %d bytes that differ from the served %d", len(got), len(h.body))
	}
	for _, leftover := range []string{path + ".partial", path + ".partial.meta"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Errorf("%s left behind", filepath.Base(leftover))
		}
	}
}

func TestDownloadClean(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<20)
	dir := filepath.Join(t.TempDir(), "models") // created by Download
	var progress bytes.Buffer
	path, err := Download(context.Background(), h.options(dir, &progress))
	if err != nil {
		t.Fatal(err)
	}
	checkDownloaded(t, h, path, dir)
	hubReqs, cdnReqs := h.requests()
	// Metadata comes from a HEAD that stops at the redirect; the bytes from one plain GET at the CDN.
	if len(hubReqs) != 1 || hubReqs[0].method != http.MethodHead || hubReqs[0].status != http.StatusFound {
		t.Errorf("hub requests = %+v, want one HEAD answered 302", hubReqs)
	}
	if len(cdnReqs) != 1 || cdnReqs[0].method != http.MethodGet || cdnReqs[0].rng != "" || cdnReqs[0].status != http.StatusOK {
		t.Errorf("cdn requests = %+v, want one GET without Range answered 200", cdnReqs)
	}
	if !strings.Contains(progress.String(), "tiny-Q4_K_M.gguf: done, 1.00 MiB") {
		t.Errorf("progress output lacks the final line:\n%s", progress.String())
	}
}

func TestDownloadResumesAfterCutConnection(t *testing.T) {
	for _, ignoreRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreRange=%v", ignoreRange), func(t *testing.T) {
			quiet(t)
			h := newFakeHub(t, testRepo, testFile, 1<<20)
			h.cdnMode = "cut-once"
			h.ignoreRange = ignoreRange
			dir := t.TempDir()
			var progress bytes.Buffer
			path, err := Download(context.Background(), h.options(dir, &progress))
			if err != nil {
				t.Fatal(err)
			}
			checkDownloaded(t, h, path, dir)
			_, cdn := h.requests()
			if len(cdn) != 2 {
				t.Fatalf("cdn requests = %+v, want 2 (cut, then resumed)", cdn)
			}
			if !strings.Contains(progress.String(), "retrying") {
				t.Errorf("progress output does not mention the retry:\n%s", progress.String())
			}
			if ignoreRange {
				// The server ignored Range (the fake strips it before serving): the second GET is a whole
				// 200, which must restart the file rather than be appended.
				if cdn[1].status != http.StatusOK {
					t.Errorf("second GET status = %d, want 200", cdn[1].status)
				}
				return
			}
			start, ok := strings.CutPrefix(cdn[1].rng, "bytes=")
			n, err := strconv.Atoi(strings.TrimSuffix(start, "-"))
			if !ok || err != nil || n <= 0 || n > len(h.body)/2 {
				t.Errorf("second GET Range = %q, want bytes=N- with 0 < N <= %d", cdn[1].rng, len(h.body)/2)
			}
			if cdn[1].ifRange != h.cdnETag {
				t.Errorf("second GET If-Range = %q, want the CDN's ETag %q", cdn[1].ifRange, h.cdnETag)
			}
			if cdn[1].status != http.StatusPartialContent {
				t.Errorf("second GET status = %d, want 206", cdn[1].status)
			}
		})
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<20)
	h.cdnMode = "stall-once"
	dir := t.TempDir()
	var progress bytes.Buffer
	o := h.options(dir, &progress)
	o.retries.stall = 200 * time.Millisecond
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkDownloaded(t, h, path, dir)
	if _, cdn := h.requests(); len(cdn) != 2 || cdn[1].status != http.StatusPartialContent {
		t.Errorf("cdn requests = %+v, want a stalled GET then a resumed one", cdn)
	}
	if !strings.Contains(progress.String(), "stalled") {
		t.Errorf("progress output does not mention the stall:\n%s", progress.String())
	}
}

// An interrupted run leaves NAME.partial; the next run resumes it, or starts over when the CDN's
// validator says the file changed.
func TestDownloadResumesAcrossRuns(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("changed=%v", changed), func(t *testing.T) {
			quiet(t)
			h := newFakeHub(t, testRepo, testFile, 1<<20)
			h.cdnMode = "cut-then-down"
			dir := t.TempDir()
			o := h.options(dir, nil)
			o.retries.maxFailures = 2
			_, err := Download(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "run it again to resume") {
				t.Fatalf("first run err = %v, want a failure that says to run again", err)
			}
			target := filepath.Join(dir, testFile)
			if _, err := os.Stat(target); err == nil {
				t.Fatal("a failed download left a file at the model's path")
			}
			st, err := os.Stat(target + ".partial")
			if err != nil || st.Size() == 0 {
				t.Fatalf("partial download after the failed run: %v, size %v", err, st)
			}
			kept := st.Size()

			h.mu.Lock()
			h.cdnMode = ""
			if changed {
				h.cdnETag = `"cdn-v2"`
			}
			h.mu.Unlock()
			path, err := Download(context.Background(), h.options(dir, nil))
			if err != nil {
				t.Fatal(err)
			}
			checkDownloaded(t, h, path, dir)
			_, cdn := h.requests()
			last := cdn[len(cdn)-1]
			if want := fmt.Sprintf("bytes=%d-", kept); last.rng != want || last.ifRange != `"cdn-v1"` {
				t.Errorf("resuming GET sent Range %q If-Range %q, want %q and \"cdn-v1\"", last.rng, last.ifRange, want)
			}
			wantStatus := http.StatusPartialContent
			if changed {
				wantStatus = http.StatusOK // If-Range failed: the whole file, written from the start
			}
			if last.status != wantStatus {
				t.Errorf("resuming GET status = %d, want %d", last.status, wantStatus)
			}
		})
	}
}

func TestDownloadChecksumMismatch(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<20)
	good := h.sha
	h.sha = strings.Repeat("ab", 32)
	dir := t.TempDir()
	_, err := Download(context.Background(), h.options(dir, nil))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	for _, want := range []string{h.sha, good, "deleted the partial download"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("%s left in the models directory", e.Name())
	}
}

func TestDownloadSizeMismatch(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<16)
	h.size++
	dir := t.TempDir()
	_, err := Download(context.Background(), h.options(dir, nil))
	if err == nil || !strings.Contains(err.Error(), "65537") || !strings.Contains(err.Error(), "65536") {
		t.Fatalf("err = %v, want one naming both sizes", err)
	}
	if _, err := os.Stat(filepath.Join(dir, testFile)); err == nil {
		t.Error("a wrong-sized download was put in place")
	}
}

func TestDownloadErrors(t *testing.T) {
	closed := func() string { // an endpoint where nothing listens: what being offline looks like on loopback
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	tests := []struct {
		name     string
		token    string // the repo's token
		send     string // the token the client sends
		file     string
		endpoint string
		want     error
		says     []string
	}{
		{name: "404", file: "nope.gguf", want: ErrNotFound,
			says: []string{"no such repo/file", "acme/tiny-GGUF/nope.gguf", "--hf-file"}},
		{name: "401 without token", token: "hf_secret", want: ErrUnauthorized,
			says: []string{"HTTP 401", "set HF_TOKEN"}},
		{name: "401 with a wrong token", token: "hf_secret", send: "hf_wrong", want: ErrUnauthorized,
			says: []string{"token was refused", "HF_TOKEN"}},
		{name: "offline", endpoint: closed, want: ErrOffline,
			says: []string{"--model FILE", "smolchat synth --preset smollm3-tiny --out demo.gguf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			quiet(t)
			h := newFakeHub(t, testRepo, testFile, 1<<10)
			h.token = tc.token
			dir := t.TempDir()
			o := h.options(dir, nil)
			o.Token = tc.send
			if tc.file != "" {
				o.File = tc.file
			}
			if tc.endpoint != "" {
				o.Endpoint = tc.endpoint
			}
			_, err := Download(context.Background(), o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("models directory has %d entries after a failed download", len(entries))
			}
		})
	}
}

func TestDownloadWithToken(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		t.Run(fmt.Sprintf("HF_TOKEN=%v", viaEnv), func(t *testing.T) {
			quiet(t)
			h := newFakeHub(t, testRepo, testFile, 1<<16)
			h.token = "hf_secret"
			dir := t.TempDir()
			o := h.options(dir, nil)
			if viaEnv {
				t.Setenv("HF_TOKEN", "hf_secret")
			} else {
				o.Token = "hf_secret"
			}
			path, err := Download(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			checkDownloaded(t, h, path, dir)
			hubReqs, cdnReqs := h.requests()
			if hubReqs[0].auth != "Bearer hf_secret" {
				t.Errorf("hub saw Authorization %q", hubReqs[0].auth)
			}
			for _, r := range cdnReqs {
				if r.auth != "" {
					t.Errorf("the token was sent to the CDN: %q", r.auth)
				}
			}
		})
	}
}

func TestTokenFile(t *testing.T) {
	quiet(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("hf_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HF_TOKEN_PATH", file)
	if got := tokenFromEnv(); got != "hf_fromfile" {
		t.Errorf("token from HF_TOKEN_PATH = %q", got)
	}
	t.Setenv("HF_TOKEN", "hf_env")
	if got := tokenFromEnv(); got != "hf_env" {
		t.Errorf("HF_TOKEN should win over the token file, got %q", got)
	}
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_home"), 0o600)
	if got := tokenFromEnv(); got != "hf_home" {
		t.Errorf("token from $HF_HOME/token = %q", got)
	}
}

func TestHFEndpointHonoured(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<16)
	t.Setenv("HF_ENDPOINT", h.hub.URL+"/")
	dir := t.TempDir()
	o := h.options(dir, nil)
	o.Endpoint = ""
	path, err := Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkDownloaded(t, h, path, dir)
	if hubReqs, _ := h.requests(); len(hubReqs) != 1 || hubReqs[0].path != "/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf" {
		t.Errorf("hub requests = %+v", hubReqs)
	}
}

func TestDownloadRetriesHubErrors(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<16)
	h.hubFail = 2
	dir := t.TempDir()
	path, err := Download(context.Background(), h.options(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	checkDownloaded(t, h, path, dir)
	if hubReqs, _ := h.requests(); len(hubReqs) != 3 {
		t.Errorf("hub requests = %d, want 3 (two 503s, then success)", len(hubReqs))
	}
}

func TestDownloadKeepsOrReplacesExistingFile(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<16)
	dir := t.TempDir()
	target := filepath.Join(dir, testFile)

	os.WriteFile(target, h.body, 0o644)
	var progress bytes.Buffer
	if _, err := Download(context.Background(), h.options(dir, &progress)); err != nil {
		t.Fatal(err)
	}
	if _, cdn := h.requests(); len(cdn) != 0 {
		t.Errorf("an up-to-date file was downloaded again (%d CDN requests)", len(cdn))
	}
	if !strings.Contains(progress.String(), "up to date") {
		t.Errorf("progress output = %q, want it to say the file is up to date", progress.String())
	}

	stale := bytes.Clone(h.body)
	stale[100] ^= 1
	os.WriteFile(target, stale, 0o644)
	path, err := Download(context.Background(), h.options(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	checkDownloaded(t, h, path, dir)
	if _, cdn := h.requests(); len(cdn) != 1 {
		t.Errorf("a stale file was not downloaded again (%d CDN requests)", len(cdn))
	}
}

func TestEnsureDefault(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, DefaultRepo, DefaultFile, 1<<16)
	dir := t.TempDir()
	o := h.options(dir, nil)
	o.Repo, o.File = "", "" // the default model
	path, err := EnsureDefault(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if path != DefaultModelPath(dir) {
		t.Errorf("path = %s, want DefaultModelPath %s", path, DefaultModelPath(dir))
	}
	checkDownloaded(t, h, path, dir)

	h.hub.Close() // a second call must not need the network
	again, err := EnsureDefault(context.Background(), o)
	if err != nil || again != path {
		t.Errorf("second EnsureDefault = %q, %v; want %q from disk", again, err, path)
	}
}

func TestDownloadCanceled(t *testing.T) {
	quiet(t)
	h := newFakeHub(t, testRepo, testFile, 1<<16)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Download(ctx, h.options(t.TempDir(), nil))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	quiet(t)
	tests := []struct {
		name string
		o    Options
		says string
	}{
		{"bad endpoint", Options{Endpoint: "ftp://example.com"}, "not an http(s) URL"},
		{"repo escapes", Options{Repo: "../etc", File: "x.gguf"}, "not a Hugging Face repo id"},
		{"repo with three parts", Options{Repo: "a/b/c", File: "x.gguf"}, "not a Hugging Face repo id"},
		{"file escapes", Options{Repo: "a/b", File: "../../x.gguf"}, "not a path inside a repository"},
		{"absolute file", Options{Repo: "a/b", File: "/x.gguf"}, "not a path inside a repository"},
		{"no file", Options{Repo: "a/b"}, "no file name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.ModelsDir = t.TempDir()
			_, err := Download(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err = %v, want one saying %q", err, tc.says)
			}
		})
	}
}

func TestResolveURL(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Endpoint: "https://huggingface.co", Repo: DefaultRepo, File: DefaultFile, Revision: "main"},
			"https://huggingface.co/bartowski/HuggingFaceTB_SmolLM3-3B-GGUF/resolve/main/HuggingFaceTB_SmolLM3-3B-Q4_K_M.gguf"},
		{Options{Endpoint: "http://mirror:8080", Repo: "ggml-org/SmolLM3-3B-GGUF", File: "sub dir/a+b.gguf", Revision: "refs/pr/1"},
			"http://mirror:8080/ggml-org/SmolLM3-3B-GGUF/resolve/refs%2Fpr%2F1/sub%20dir/a+b.gguf"},
	}
	for _, tc := range tests {
		if got := tc.o.resolveURL(); got != tc.want {
			t.Errorf("resolveURL = %s, want %s", got, tc.want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in           string
		start, total int64
		bad          bool
	}{
		{"bytes 100-199/1000", 100, 1000, false},
		{"bytes 0-0/*", 0, -1, false},
		{"bytes */1000", 0, 0, true},
		{"items 1-2/3", 0, 0, true},
		{"bytes -5-1/3", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tc := range tests {
		start, total, err := parseContentRange(tc.in)
		if (err != nil) != tc.bad || !tc.bad && (start != tc.start || total != tc.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tc.in, start, total, err)
		}
	}
}
