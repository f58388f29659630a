package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// retryPolicy is how a download retries and how long it waits; Options.retries carries it (resolve
// fills in the defaults below), so that tests shorten it for their own downloads only.
type retryPolicy struct {
	// maxFailures is how many attempts in a row may fail without receiving a byte before giving up.
	maxFailures int
	// delay is the pause before the attempt that follows the n-th consecutive failure.
	delay func(n int) time.Duration
	// stall aborts a request that receives nothing for this long; the download then resumes.
	stall time.Duration
	// head bounds the metadata request.
	head time.Duration
}

// defaultRetries pause 1, 2, 4 and 8 s after the first failures in a row and give up at the fifth.
var defaultRetries = retryPolicy{
	maxFailures: 5,
	delay:       func(n int) time.Duration { return time.Second << (min(n, 5) - 1) },
	stall:       60 * time.Second,
	head:        30 * time.Second,
}

const userAgent = "smolchat (model/hub)"

// remote is what the Hub says about a file.
type remote struct {
	location string // where the bytes are: the CDN URL the Hub redirects to, or the resolve URL itself
	size     int64
	etag     string // the LFS sha256 for large files, the git blob id for small ones
	sha256   string // etag when it is a sha256, else empty
}

// retryable marks an error another attempt may get past: a cut connection, a 5xx, an expired CDN link.
type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

func retry(format string, args ...any) error { return &retryable{fmt.Errorf(format, args...)} }

var errStalled = errors.New("no data received")

// downloader is one Download call. Its partial file and hash survive from one attempt to the next.
type downloader struct {
	o                        Options
	target, partial, sidecar string
	prog                     *progress

	reachedHub    bool // a Hub response arrived at least once: failures are not "offline"
	checkedTarget bool
	hasher        hash.Hash // sha256 of the partial file's first hashed bytes
	hashed        int64
}

func download(ctx context.Context, o Options) (string, error) {
	if err := os.MkdirAll(o.ModelsDir, 0o755); err != nil {
		return "", fmt.Errorf("create models directory: %w", err)
	}
	target := o.target()
	d := &downloader{o: o, target: target, partial: target + ".partial", sidecar: target + ".partial.meta",
		prog: newProgress(o.Progress, path.Base(o.File), time.Now)}
	failures := 0
	for {
		progressed, err := d.attempt(ctx)
		if err == nil {
			return target, nil
		}
		if ctx.Err() != nil {
			d.prog.Abort()
			return "", fmt.Errorf("download of %s stopped: %w (run it again to resume)", o.File, context.Cause(ctx))
		}
		var r *retryable
		if !errors.As(err, &r) {
			d.prog.Abort()
			return "", err
		}
		if progressed {
			failures = 0
		}
		failures++
		if failures >= d.o.retries.maxFailures {
			d.prog.Abort()
			if !d.reachedHub {
				return "", d.offline(err)
			}
			return "", fmt.Errorf("download of %s failed %d times in a row without progress, last: %w (run it again to resume)",
				o.File, failures, err)
		}
		wait := d.o.retries.delay(failures)
		d.prog.Note(fmt.Sprintf("%v; retrying in %s", err, wait))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// attempt makes one pass: ask the Hub, fetch what is missing, verify, rename. progressed reports whether
// any bytes arrived, which resets the failure count.
func (d *downloader) attempt(ctx context.Context) (progressed bool, err error) {
	rem, err := d.metadata(ctx)
	if err != nil {
		return false, err
	}
	if !d.checkedTarget {
		d.checkedTarget = true
		if ok, err := d.upToDate(rem); err != nil || ok {
			return false, err
		}
	}
	f, st, err := d.openPartial(rem)
	if err != nil {
		return false, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if d.hashed < rem.size {
		if progressed, err = d.fetch(ctx, f, st, rem); err != nil {
			return progressed, err
		}
	}
	if rem.sha256 != "" {
		if got := hex.EncodeToString(d.hasher.Sum(nil)); got != rem.sha256 {
			f.Close()
			f = nil
			d.discardPartial()
			return progressed, fmt.Errorf("%w: %s: the Hub lists sha256 %s, the download has sha256 %s; "+
				"deleted the partial download, run again to fetch it afresh", ErrChecksum, d.o.File, rem.sha256, got)
		}
	}
	if err := f.Sync(); err != nil {
		return progressed, fmt.Errorf("write %s: %w", d.partial, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return progressed, fmt.Errorf("write %s: %w", d.partial, err)
	}
	if err := os.Rename(d.partial, d.target); err != nil {
		return progressed, fmt.Errorf("move the finished download into place: %w", err)
	}
	os.Remove(d.sidecar)
	d.prog.Finish()
	return progressed, nil
}

// metadata asks the resolve endpoint about the file with HEAD requests that stop at the redirect to the
// CDN, whose headers carry the size and hash. Relative redirects (a renamed repo, the Hub's own cache of
// small files) are followed, as huggingface_hub does.
func (d *downloader) metadata(ctx context.Context) (remote, error) {
	hctx, cancel := context.WithTimeout(ctx, d.o.retries.head)
	defer cancel()
	client := *d.o.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := d.o.resolveURL()
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(hctx, http.MethodHead, u, nil)
		if err != nil {
			return remote{}, fmt.Errorf("build request for %s: %w", u, err)
		}
		d.setHeaders(req)
		resp, err := client.Do(req)
		if err != nil {
			return remote{}, d.networkError(ctx, err)
		}
		resp.Body.Close()
		d.reachedHub = true
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return remote{}, fmt.Errorf("hub answered %s for %s without a usable Location: %w", resp.Status, u, err)
			}
			if raw, _ := url.Parse(resp.Header.Get("Location")); raw != nil && raw.Host == "" && hops < 5 {
				u = loc.String()
				continue
			}
			return d.remoteFrom(resp, loc.String())
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return d.remoteFrom(resp, u)
		default:
			return remote{}, d.statusError(resp)
		}
	}
}

// sha256Hex is a lowercase hex sha256, which is what X-Linked-Etag holds for LFS files.
var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (d *downloader) remoteFrom(resp *http.Response, location string) (remote, error) {
	etag := resp.Header.Get("X-Linked-Etag")
	if etag == "" {
		etag = resp.Header.Get("ETag")
	}
	etag = strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	rem := remote{location: location, etag: etag, size: -1}
	if sha256Hex.MatchString(etag) {
		rem.sha256 = etag
	}
	size := resp.Header.Get("X-Linked-Size")
	if size == "" && resp.StatusCode < 300 {
		size = resp.Header.Get("Content-Length")
	}
	if n, err := strconv.ParseInt(size, 10, 64); err == nil && n >= 0 {
		rem.size = n
	}
	if rem.size < 0 {
		return remote{}, fmt.Errorf("the Hub did not give the size of %s (no X-Linked-Size or Content-Length), "+
			"so a download could not be checked; is %s a Hugging Face endpoint?", d.o.File, d.o.Endpoint)
	}
	if rem.etag == "" {
		return remote{}, fmt.Errorf("the Hub did not give an ETag for %s, so a download could not be checked; "+
			"is %s a Hugging Face endpoint?", d.o.File, d.o.Endpoint)
	}
	return rem, nil
}

// upToDate reports whether the target already holds the Hub's file.
func (d *downloader) upToDate(rem remote) (bool, error) {
	st, err := os.Stat(d.target)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check existing model: %w", err)
	}
	if st.Size() != rem.size {
		d.prog.Note(fmt.Sprintf("%s is %s but the Hub's copy is %s; downloading it again",
			d.target, FormatSize(st.Size()), FormatSize(rem.size)))
		return false, nil
	}
	if rem.sha256 != "" {
		got, err := fileSHA256(d.target)
		if err != nil {
			return false, err
		}
		if got != rem.sha256 {
			d.prog.Note(fmt.Sprintf("%s differs from the Hub's copy (sha256 %s, want %s); downloading it again",
				d.target, got, rem.sha256))
			return false, nil
		}
	}
	d.prog.Note(fmt.Sprintf("%s is up to date", d.target))
	return true, nil
}

// partialState is the sidecar beside NAME.partial: which remote file the partial bytes belong to, and the
// download server's validator for If-Range.
type partialState struct {
	Repo      string `json:"repo"`
	File      string `json:"file"`
	ETag      string `json:"etag"`
	Size      int64  `json:"size"`
	Validator string `json:"validator,omitempty"` // the CDN's strong ETag or Last-Modified
}

// openPartial opens NAME.partial for appending: kept when the sidecar says it holds a prefix of this
// very file, emptied otherwise. On return d.hasher covers the file's bytes.
func (d *downloader) openPartial(rem remote) (*os.File, *partialState, error) {
	want := &partialState{Repo: d.o.Repo, File: d.o.File, ETag: rem.etag, Size: rem.size}
	var st partialState
	keep := false
	if b, err := os.ReadFile(d.sidecar); err == nil && json.Unmarshal(b, &st) == nil {
		keep = st.Repo == want.Repo && st.File == want.File && st.ETag == want.ETag && st.Size == want.Size
	}
	if !keep {
		st = *want
		d.hasher, d.hashed = nil, 0
		os.Remove(d.partial)
		if err := d.saveState(&st); err != nil {
			return nil, nil, err
		}
	}
	f, err := os.OpenFile(d.partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open partial download: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open partial download: %w", err)
	}
	n := info.Size()
	if n > rem.size {
		n = 0
	}
	if d.hasher == nil || d.hashed != n {
		if d.hasher, err = hashPrefix(f, n); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read partial download: %w", err)
		}
		d.hashed = n
	}
	if err := d.truncate(f, n); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, &st, nil
}

// truncate cuts the partial file to n bytes (dropping any tail the hash does not cover) and positions
// writes there.
func (d *downloader) truncate(f *os.File, n int64) error {
	if n == 0 {
		d.hasher, d.hashed = sha256.New(), 0
	}
	if err := f.Truncate(n); err != nil {
		return fmt.Errorf("truncate partial download: %w", err)
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		return fmt.Errorf("seek partial download: %w", err)
	}
	return nil
}

func (d *downloader) saveState(st *partialState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.sidecar, b, 0o644); err != nil {
		return fmt.Errorf("record partial download: %w", err)
	}
	return nil
}

func (d *downloader) discardPartial() {
	os.Remove(d.partial)
	os.Remove(d.sidecar)
	d.hasher, d.hashed = nil, 0
}

// fetch GETs the missing tail of the file into f, resuming with Range (and If-Range, so a changed file
// restarts rather than splices) when part of it is already there.
func (d *downloader) fetch(ctx context.Context, f *os.File, st *partialState, rem remote) (progressed bool, err error) {
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.o.retries.stall, func() { cancel(errStalled) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(rctx, http.MethodGet, rem.location, nil)
	if err != nil {
		return false, fmt.Errorf("build request for %s: %w", rem.location, err)
	}
	d.setHeaders(req)
	offset := d.hashed
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		if st.Validator != "" {
			req.Header.Set("If-Range", st.Validator)
		}
	}
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		if context.Cause(rctx) == errStalled {
			return false, retry("no answer from the download server for %s", d.o.retries.stall)
		}
		return false, d.networkError(ctx, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return false, fmt.Errorf("download server: %w", err)
		}
		if total >= 0 && total != rem.size {
			return false, fmt.Errorf("the download server has %s as %d bytes but the Hub lists %d", d.o.File, total, rem.size)
		}
		if start != offset {
			if err := d.truncate(f, 0); err != nil {
				return false, err
			}
			return false, retry("the download server resumed at byte %d instead of %d; restarting from the beginning", start, offset)
		}
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != rem.size {
			return false, fmt.Errorf("the download server sends %d bytes for %s but the Hub lists %d", resp.ContentLength, d.o.File, rem.size)
		}
		if offset > 0 {
			// The server ignored Range, or If-Range found the file changed: this body is the whole file.
			d.prog.Note(fmt.Sprintf("the download server sent the whole file instead of resuming at %s; starting over", FormatSize(offset)))
			offset = 0
			if err := d.truncate(f, 0); err != nil {
				return false, err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := d.truncate(f, 0); err != nil {
			return false, err
		}
		return false, retry("the download server cannot resume at byte %d; restarting from the beginning", offset)
	default:
		return false, d.downloadStatusError(resp, rem)
	}
	if v := validator(resp); v != "" && v != st.Validator {
		st.Validator = v
		if err := d.saveState(st); err != nil {
			return false, err
		}
	}

	d.prog.Start(rem.size, offset)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(d.o.retries.stall)
			if offset+int64(n) > rem.size {
				return progressed, fmt.Errorf("the download server sent more than the %d bytes the Hub lists for %s", rem.size, d.o.File)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return progressed, fmt.Errorf("write %s: %w", d.partial, err)
			}
			d.hasher.Write(buf[:n])
			offset += int64(n)
			d.hashed = offset
			progressed = true
			d.prog.Set(offset)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if context.Cause(rctx) == errStalled {
				return progressed, retry("download stalled at %s: %w for %s", FormatSize(offset), errStalled, d.o.retries.stall)
			}
			if ctx.Err() != nil {
				return progressed, ctx.Err()
			}
			return progressed, retry("connection lost at %s of %s: %w", FormatSize(offset), FormatSize(rem.size), rerr)
		}
	}
	if offset < rem.size {
		return progressed, retry("connection closed at %s of %s", FormatSize(offset), FormatSize(rem.size))
	}
	return progressed, nil
}

// setHeaders adds the headers every request carries; the token goes only to the Hub's own host, never
// to the CDN its redirects point at (their links are signed).
func (d *downloader) setHeaders(req *http.Request) {
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity") // sizes and hashes are of the raw bytes
	if d.o.Token != "" && sameHost(req.URL, d.o.Endpoint) {
		req.Header.Set("Authorization", "Bearer "+d.o.Token)
	}
}

func sameHost(u *url.URL, endpoint string) bool {
	e, err := url.Parse(endpoint)
	return err == nil && strings.EqualFold(u.Scheme, e.Scheme) && strings.EqualFold(u.Host, e.Host)
}

// what names the requested file in messages.
func (d *downloader) what() string {
	return fmt.Sprintf("%s/%s (revision %s)", d.o.Repo, d.o.File, d.o.Revision)
}

// statusError turns a Hub error status into an error that says what to do.
func (d *downloader) statusError(resp *http.Response) error {
	code, msg := resp.Header.Get("X-Error-Code"), resp.Header.Get("X-Error-Message")
	detail := ""
	if msg != "" {
		detail = ": " + msg
	}
	switch {
	case code == "GatedRepo":
		return fmt.Errorf("%w: %s is gated (HTTP %d%s): accept its terms at %s/%s, then set HF_TOKEN to an access token of that account",
			ErrUnauthorized, d.o.Repo, resp.StatusCode, detail, d.o.Endpoint, d.o.Repo)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if d.o.Token == "" {
			return fmt.Errorf("%w: %s (HTTP %d%s): the repo may be private or gated, or may not exist; "+
				"set HF_TOKEN to a Hugging Face access token (%s/settings/tokens) and check --hf-repo",
				ErrUnauthorized, d.what(), resp.StatusCode, detail, d.o.Endpoint)
		}
		return fmt.Errorf("%w: %s (HTTP %d%s): the token was refused; check that HF_TOKEN is valid and can read this repo, and check --hf-repo",
			ErrUnauthorized, d.what(), resp.StatusCode, detail)
	case resp.StatusCode == http.StatusNotFound:
		hint := "check --hf-repo, --hf-file and --revision"
		switch code {
		case "RepoNotFound":
			hint = "no repository " + d.o.Repo + "; check --hf-repo"
		case "RevisionNotFound":
			hint = "no revision " + d.o.Revision + "; check --revision"
		case "EntryNotFound":
			hint = "the repository has no file " + d.o.File + "; check --hf-file"
		}
		return fmt.Errorf("%w: %s (HTTP 404%s): %s", ErrNotFound, d.what(), detail, hint)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return retry("the Hub answered %s for %s", resp.Status, d.what())
	}
	return fmt.Errorf("the Hub answered %s for %s%s", resp.Status, d.what(), detail)
}

// downloadStatusError handles an error status from the GET. When it comes from a CDN the Hub pointed at,
// 401/403/404/410 usually mean its signed link expired: asking the Hub again gets a fresh one.
func (d *downloader) downloadStatusError(resp *http.Response, rem remote) error {
	u, err := url.Parse(rem.location)
	if err != nil || sameHost(u, d.o.Endpoint) {
		return d.statusError(resp)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone,
		http.StatusTooManyRequests, http.StatusRequestTimeout:
		return retry("the download server %s answered %s; asking the Hub for a fresh link", u.Host, resp.Status)
	}
	if resp.StatusCode >= 500 {
		return retry("the download server %s answered %s", u.Host, resp.Status)
	}
	return fmt.Errorf("the download server %s answered %s for %s", u.Host, resp.Status, d.what())
}

// networkError classifies a failed request: a missing DNS name or a refused connection means we are
// offline (no point retrying), anything else may pass.
func (d *downloader) networkError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var dns *net.DNSError
	var op *net.OpError
	if errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial" && !op.Timeout()) {
		if !d.reachedHub {
			return d.offline(err)
		}
	}
	return &retryable{err}
}

func (d *downloader) offline(err error) error {
	var r *retryable
	if errors.As(err, &r) {
		err = r.err
	}
	return fmt.Errorf("%w at %s (%v). To run without downloading, pass --model FILE with a GGUF model you have, "+
		"or try the UI with a random-weight model: smolchat synth --preset smollm3-tiny --out demo.gguf, then smolchat --model demo.gguf",
		ErrOffline, d.o.Endpoint, err)
}

// validator is what If-Range can name: a strong ETag, else Last-Modified.
func validator(resp *http.Response) string {
	if e := resp.Header.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		return e
	}
	return resp.Header.Get("Last-Modified")
}

// parseContentRange reads "bytes START-END/TOTAL"; total is -1 when the server gives "*".
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	span, size, ok := strings.Cut(rest, "/")
	first, _, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil || start < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if size == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(size, 10, 64); err != nil || total < 0 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return start, total, nil
}

// hashPrefix hashes the first n bytes of f.
func hashPrefix(f *os.File, n int64) (hash.Hash, error) {
	h := sha256.New()
	if n == 0 {
		return h, nil
	}
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return nil, err
	}
	return h, nil
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
