package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"smolchat/internal/testutil"
)

// The seqFake exports a position as its token (4 bytes): what it "computed" for it.

func (f *seqFake) KVFormat() string { return "seqfake tokens" }

func (f *seqFake) ExportSeq(id SeqID, from, to int, w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.seqs[id]
	if !ok || from%f.blockLen != 0 || to > len(t) {
		return fmt.Errorf("seqfake: export %d..%d of %d", from, to, id)
	}
	var b []byte
	for _, x := range t[from:to] {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	_, err := w.Write(b)
	return err
}

func (f *seqFake) ImportSeq(r io.Reader, n int) (SeqID, error) {
	b := make([]byte, 4*n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if need := (n + f.blockLen - 1) / f.blockLen; f.usedLocked()+need > f.blocks {
		return 0, fmt.Errorf("seqfake: import of %d blocks: %w", need, ErrKVFull)
	}
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	f.last++
	f.seqs[f.last] = t
	return f.last, nil
}

// diskEngine makes an engine on a seqFake of blocks whose conversations spill to dir (at most maxBytes),
// as the model named by identity; logs go to log.
func diskEngine(t *testing.T, dir string, maxBytes int64, identity string, blocks int, log io.Writer) (*Engine, *seqFake) {
	e, f := newSeqEngine(t, 4, blocks)
	e.logger = slog.New(slog.NewTextHandler(log, nil))
	d, err := openKVDisk(dir, maxBytes, sha256.Sum256([]byte(identity)), f.KVFormat(), 4, e.logger)
	if err != nil {
		t.Fatal(err)
	}
	e.disk = d
	return e, f
}

// kvFiles lists the KV files in dir and in its models' subdirectories.
func kvFiles(t *testing.T, dir string) []string {
	t.Helper()
	top, err := filepath.Glob(filepath.Join(dir, "*.kv"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := filepath.Glob(filepath.Join(dir, "*", "*.kv"))
	if err != nil {
		t.Fatal(err)
	}
	return append(top, sub...)
}

// firstTurn runs a conversation's first turn on an engine spilling to dir as "model A", closes it, and
// returns the turn's prompt and answer and the file it left.
func firstTurn(t *testing.T, dir string, log io.Writer) (first, answer []int32, file string) {
	t.Helper()
	first = prompt(3, 50)
	e, _ := diskEngine(t, dir, 1<<20, "model A", 1000, log)
	r, err := e.Generate(context.Background(), first, greedy(6), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	files := kvFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d files after close, want the conversation's one", len(files))
	}
	return first, r.Tokens, files[0]
}

// TestKVDiskRestart closes an engine after a conversation and opens another on the same directory: the
// conversation's next turn starts after what the first engine evaluated, read from disk.
func TestKVDiskRestart(t *testing.T) {
	dir := t.TempDir()
	var log testutil.LogBuffer
	first, answer, _ := firstTurn(t, dir, &log)

	e2, f2 := diskEngine(t, dir, 1<<20, "model A", 1000, &log)
	next := slices.Concat(first, answer, prompt(7, 8))
	r2, err := e2.Generate(context.Background(), next, greedy(5), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := len(first) + len(answer) - 1 // the last answer token was picked, never evaluated
	if r2.Timings.CachedTokens != held {
		t.Errorf("cached tokens %d, want %d from disk", r2.Timings.CachedTokens, held)
	}
	if want := continuation(next, 5); !slices.Equal(r2.Tokens, want) {
		t.Errorf("tokens %v, want %v", r2.Tokens, want)
	}
	if st, _ := e2.SchedulerStats(); st.DiskLoads != 1 {
		t.Errorf("disk loads %d, want 1", st.DiskLoads)
	}
	if f2.fed != len(next)-held+4 { // the new tokens, then 4 decode steps
		t.Errorf("the backend evaluated %d tokens, want %d", f2.fed, len(next)-held+4)
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("warnings: %s", log.String())
	}
}

// TestKVDiskUnusable damages the file of a conversation, or makes it another model's, format's or
// version's: the next engine removes it with a log line and evaluates the whole prompt, answering as
// if nothing had been cached.
func TestKVDiskUnusable(t *testing.T) {
	flip := func(at func(size int) int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[at(len(b))] ^= 0x10
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	payload := func(size int) int { return size - 12 - 40 } // a position's token, before the trailer
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
		why    string
	}{
		{"flipped payload byte", flip(payload), "checksum mismatch"},
		{"flipped checksum", flip(func(size int) int { return size - 1 }), "checksum mismatch"},
		{"flipped magic", flip(func(int) int { return 0 }), "bad magic"},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 300); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"empty", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"other version", flip(func(int) int { return len(kvMagic) }), "version"},
		// A file of another model in this model's directory (copied there by hand, say).
		{"other model", flip(func(int) int { return len(kvMagic) + 4 }), "another model"},
		{"other format", flip(func(int) int { return len(kvMagic) + 4 + sha256.Size + 4 }), "another KV format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var log testutil.LogBuffer
			first, answer, file := firstTurn(t, dir, &log)
			c.damage(t, file)
			e2, f2 := diskEngine(t, dir, 1<<20, "model A", 1000, &log)
			next := slices.Concat(first, answer, prompt(7, 8))
			r2, err := e2.Generate(context.Background(), next, greedy(5), false, nil)
			if err != nil {
				t.Fatalf("a damaged cache file failed the request: %v", err)
			}
			if r2.Timings.CachedTokens != 0 || f2.fed != len(next)+4 {
				t.Errorf("cached tokens %d, evaluated %d: want the whole prompt evaluated", r2.Timings.CachedTokens, f2.fed)
			}
			if want := continuation(next, 5); !slices.Equal(r2.Tokens, want) {
				t.Errorf("tokens %v, want %v", r2.Tokens, want)
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("the unusable file is still there")
			}
			if l := log.String(); !strings.Contains(l, "removing a KV cache file") || !strings.Contains(l, c.why) {
				t.Errorf("the log does not say the file was removed because of %q:\n%s", c.why, l)
			}
		})
	}
}

// TestKVDiskCap writes conversations under a cap that holds two files: the least recently used (by
// write or load) goes first.
func TestKVDiskCap(t *testing.T) {
	f := newSeqFake(300, 1000)
	var log testutil.LogBuffer
	conv := map[string][]int32{"a": prompt(1, 40), "b": prompt(2, 40), "c": prompt(3, 40), "d": prompt(4, 40)}
	seqs := map[string]SeqID{}
	for name, p := range conv {
		seqs[name] = f.NewSeq()
		if _, err := f.ForwardSeqs(context.Background(), []SeqEntry{{Seq: seqs[name], Tokens: p}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		steps []string // "w x": write conversation x; "l x": load it
		want  []string // the conversations on disk, least recently used first
	}{
		{"writes", []string{"w a", "w b", "w c"}, []string{"b", "c"}},
		{"a load counts as use", []string{"w a", "w b", "l a", "w c"}, []string{"a", "c"}},
		{"rewrite", []string{"w a", "w b", "w a", "w c"}, []string{"a", "c"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			id := sha256.Sum256([]byte("m"))
			// A file is a 66-byte header (magic, version, identity, format, count), 40 tokens twice
			// (header and payload) and a 12-byte trailer: 398 bytes; the cap holds two.
			d, err := openKVDisk(dir, 2*398+100, id, f.KVFormat(), 4, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil {
				t.Fatal(err)
			}
			for _, step := range c.steps {
				op, name, _ := strings.Cut(step, " ")
				switch op {
				case "w":
					if err := d.write(f, seqs[name], conv[name], 4, nil); err != nil {
						t.Fatal(err)
					}
				case "l":
					got, _ := d.best(append(slices.Clone(conv[name]), 0))
					seq, err := d.load(f, f, got)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(f.tokensOf(seq), conv[name]) {
						t.Fatalf("loaded %v, want %v", f.tokensOf(seq), conv[name])
					}
				}
			}
			var have []string
			for _, df := range d.files {
				for name, p := range conv {
					if slices.Equal(df.tokens, p) {
						have = append(have, name)
					}
				}
				if df.size != 398 {
					t.Errorf("file of %d bytes, want 398", df.size)
				}
			}
			if !slices.Equal(have, c.want) {
				t.Errorf("on disk %v, want %v", have, c.want)
			}
			if n := len(kvFiles(t, dir)); n != len(c.want) {
				t.Errorf("%d files in the directory, want %d", n, len(c.want))
			}
			// A restart finds them in the same order.
			d.close()
			d2, err := openKVDisk(dir, 2*398+100, id, f.KVFormat(), 4, slog.New(slog.NewTextHandler(&log, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if len(d2.files) != len(c.want) {
				t.Errorf("after a restart %d files, want %d", len(d2.files), len(c.want))
			}
		})
	}
}

// TestKVDiskEvictedAndIdle: a conversation evicted from a KV pool that holds one at a time is read back
// from disk when it is returned to, and an idle scheduler writes its cached conversations without
// waiting for an eviction or a close.
func TestKVDiskEvictedAndIdle(t *testing.T) {
	dir := t.TempDir()
	var log testutil.LogBuffer
	e, f := diskEngine(t, dir, 1<<20, "model A", 20, &log) // 20 blocks of 4: one 60-token conversation
	idle := make(chan struct{}, 1)
	beforeScheduler(t, e)
	e.hooks.onIdle = func() {
		// Only an idle moment with a conversation cached: the scheduler may also be idle before the
		// first request arrives, with nothing to spill. (The hook runs on the scheduler's goroutine,
		// started after e.sched was set.)
		if len(e.sched.cache.entries) > 0 {
			select {
			case idle <- struct{}{}:
			default:
			}
		}
	}
	a, b := prompt(1, 60), prompt(2, 60)
	ra, err := e.Generate(context.Background(), a, greedy(3), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-idle // spilled what it could
	if n := len(kvFiles(t, dir)); n != 1 {
		t.Errorf("%d files once idle, want 1", n)
	}
	if _, err := e.Generate(context.Background(), b, greedy(3), false, nil); err != nil {
		t.Fatal(err)
	}
	next := slices.Concat(a, ra.Tokens, prompt(5, 4))
	before := f.fed
	r, err := e.Generate(context.Background(), next, greedy(3), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.SchedulerStats()
	if st.DiskLoads != 1 || st.Evictions == 0 {
		t.Errorf("disk loads %d, evictions %d: want the first conversation evicted, then loaded", st.DiskLoads, st.Evictions)
	}
	if held := len(a) + len(ra.Tokens) - 1; r.Timings.CachedTokens != held || f.fed-before != len(next)-held+2 {
		t.Errorf("cached %d, evaluated %d; want %d cached", r.Timings.CachedTokens, f.fed-before, held)
	}
	if want := continuation(next, 3); !slices.Equal(r.Tokens, want) {
		t.Errorf("tokens %v, want %v", r.Tokens, want)
	}
}

// TestKVDiskSharedRoot: two servers sharing a data directory, of different models or of one model on
// backends of different KV formats, each write more conversations than their cap holds. Each keeps its
// own files under its own cap and removes none of the other's, and a restart of the first finds its
// files.
func TestKVDiskSharedRoot(t *testing.T) {
	f := newSeqFake(300, 1000)
	conv := [][]int32{prompt(1, 40), prompt(2, 40), prompt(3, 40), prompt(4, 40), prompt(5, 40)}
	seqs := make([]SeqID, len(conv))
	for i, p := range conv {
		seqs[i] = f.NewSeq()
		if _, err := f.ForwardSeqs(context.Background(), []SeqEntry{{Seq: seqs[i], Tokens: p}}); err != nil {
			t.Fatal(err)
		}
	}
	const capTwo = 2*398 + 100 // two 40-token files (TestKVDiskCap)
	idA := sha256.Sum256([]byte("model A"))
	for _, c := range []struct {
		name   string
		id     [sha256.Size]byte
		format string
	}{
		{"another model", sha256.Sum256([]byte("model B")), f.KVFormat()},
		{"another format", idA, "another backend's format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			var log testutil.LogBuffer
			logger := slog.New(slog.NewTextHandler(&log, nil))
			write := func(d *kvDisk, which ...int) {
				for _, i := range which {
					if err := d.write(f, seqs[i], conv[i], 4, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			a, err := openKVDisk(root, capTwo, idA, f.KVFormat(), 4, logger)
			if err != nil {
				t.Fatal(err)
			}
			write(a, 0, 1)
			filesA := kvFiles(t, root)
			b, err := openKVDisk(root, capTwo, c.id, c.format, 4, logger)
			if err != nil {
				t.Fatal(err)
			}
			if a.dir == b.dir {
				t.Fatalf("both use the directory %s", a.dir)
			}
			write(b, 2, 3, 4) // the third write removes b's oldest
			for _, name := range filesA {
				if _, err := os.Stat(name); err != nil {
					t.Errorf("the first server's file is gone: %v", err)
				}
			}
			if n := len(kvFiles(t, b.dir)); n != 2 {
				t.Errorf("the second server's directory holds %d files, want the 2 its cap holds", n)
			}
			if strings.Contains(log.String(), "removing") {
				t.Errorf("a file was removed as unusable:\n%s", log.String())
			}
			if !strings.Contains(log.String(), "other_dirs=1") {
				t.Errorf("opening the second did not log the first's directory:\n%s", log.String())
			}
			a.close() // the first server stops, and starts again
			a2, err := openKVDisk(root, capTwo, idA, f.KVFormat(), 4, logger)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 1} {
				if got, n := a2.best(append(slices.Clone(conv[i]), 0)); got == nil || n != len(conv[i]) {
					t.Errorf("after a restart the first server does not find conversation %d", i)
				}
			}
		})
	}
}

// TestKVDiskOneServerADirectory: a second server of the same model and backend on the same data
// directory gets no disk cache (an error naming the directory and the remedy, which openDisk logs)
// rather than trimming the first one's files under its own cap; another model's server on that data
// directory gets its own; once the first server stops, the directory is free again.
func TestKVDiskOneServerADirectory(t *testing.T) {
	if !dirLocks {
		t.Skip("no file locks on this system")
	}
	f := newSeqFake(300, 1000)
	root := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	idA, idB := sha256.Sum256([]byte("model A")), sha256.Sum256([]byte("model B"))
	first, err := openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger)
	if err != nil {
		t.Fatal(err)
	}
	second, err := openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger)
	if !errors.Is(err, errDiskInUse) || !strings.Contains(err.Error(), first.dir) || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("a second server of the model: %v, %v; want errDiskInUse naming %s and --data-dir", second, err, first.dir)
	}
	other, err := openKVDisk(root, 1<<20, idB, f.KVFormat(), 4, logger)
	if err != nil {
		t.Fatalf("another model's server: %v", err)
	}
	other.close()
	first.close()
	first.close() // twice is harmless
	again, err := openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger)
	if err != nil {
		t.Fatalf("after the first server stopped: %v", err)
	}
	again.close()

	// Through the engine: a running engine holds its directory, and closing it frees the directory.
	var log testutil.LogBuffer
	e1, _ := diskEngine(t, root, 1<<20, "model A", 1000, &log)
	d2, err := openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger)
	if err == nil {
		t.Fatal("a second disk cache opened beside a running engine's")
	}
	e1.Close()
	if d2, err = openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger); err != nil {
		t.Fatalf("after the engine closed: %v", err)
	}
	d2.close()
}

// TestKVDiskOpenLeftovers: opening the cache moves this model's files of the layout without
// subdirectories (directly in the cache's directory) into its directory and leaves another model's
// there, and removes a temporary file of an unfinished write only once it is old (another server of the
// model may be writing a fresh one).
func TestKVDiskOpenLeftovers(t *testing.T) {
	f := newSeqFake(300, 1000)
	conv := map[string][]int32{"a": prompt(1, 40), "b": prompt(2, 40)}
	root := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	idA, idB := sha256.Sum256([]byte("model A")), sha256.Sum256([]byte("model B"))
	// Write a file for each model, then move it up to the cache's directory as the old layout had it.
	legacy := map[string]string{}
	for name, id := range map[string][sha256.Size]byte{"a": idA, "b": idB} {
		d, err := openKVDisk(root, 1<<20, id, f.KVFormat(), 4, logger)
		if err != nil {
			t.Fatal(err)
		}
		seq := f.NewSeq()
		if _, err := f.ForwardSeqs(context.Background(), []SeqEntry{{Seq: seq, Tokens: conv[name]}}); err != nil {
			t.Fatal(err)
		}
		if err := d.write(f, seq, conv[name], 4, nil); err != nil {
			t.Fatal(err)
		}
		legacy[name] = filepath.Join(root, d.files[0].name)
		if err := os.Rename(filepath.Join(d.dir, d.files[0].name), legacy[name]); err != nil {
			t.Fatal(err)
		}
		d.close()
	}
	dirA := filepath.Join(root, modelDir(idA, f.KVFormat()))
	old, fresh := filepath.Join(dirA, "x.kv.1.tmp"), filepath.Join(dirA, "x.kv.2.tmp")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}

	d, err := openKVDisk(root, 1<<20, idA, f.KVFormat(), 4, logger)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		exist bool
	}{
		{legacy["a"], false}, // moved
		{filepath.Join(dirA, filepath.Base(legacy["a"])), true},
		{legacy["b"], true}, // another model's: left alone
		{old, false},
		{fresh, true},
	} {
		if _, err := os.Stat(c.path); (err == nil) != c.exist {
			t.Errorf("%s: exists %v, want %v", c.path, err == nil, c.exist)
		}
	}
	if got, n := d.best(append(slices.Clone(conv["a"]), 0)); got == nil || n != len(conv["a"]) {
		t.Error("the moved file is not in the cache")
	}
}

// lostImporter is a seqFake whose device is lost while it imports.
type lostImporter struct{ *seqFake }

func (lostImporter) ImportSeq(io.Reader, int) (SeqID, error) {
	return 0, fmt.Errorf("seqfake: import: %w", ErrBackendLost)
}

// TestKVDiskLoadLost: a file whose import fails because the backend was lost stays on disk, for the
// backend that replaces it.
func TestKVDiskLoadLost(t *testing.T) {
	dir := t.TempDir()
	var log testutil.LogBuffer
	first, _, file := firstTurn(t, dir, &log)
	f := newSeqFake(300, 1000)
	d, err := openKVDisk(dir, 1<<20, sha256.Sum256([]byte("model A")), f.KVFormat(), 4, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.best(append(slices.Clone(first), 0))
	if got == nil {
		t.Fatal("the first turn's file is not in the cache")
	}
	if _, err := d.load(f, lostImporter{f}, got); !errors.Is(err, ErrBackendLost) {
		t.Fatalf("load on a lost backend: %v, want ErrBackendLost", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the file was removed after a backend loss: %v", err)
	}
	if seq, err := d.load(f, f, got); err != nil || !slices.Equal(f.tokensOf(seq), got.tokens) {
		t.Errorf("a load on a working backend: %v", err)
	}
}

// otherFormat is a seqFake whose KV format is another backend's.
type otherFormat struct{ *seqFake }

func (otherFormat) KVFormat() string { return "another backend's tokens" }

// TestKVDiskAfterLoss loses the backend; the one that replaces it exports another format (the CPU
// after the GPU), and the disk cache goes on in that format's directory.
func TestKVDiskAfterLoss(t *testing.T) {
	dir := t.TempDir()
	var log testutil.LogBuffer
	e, f := diskEngine(t, dir, 1<<20, "model A", 1000, &log)
	e.openDisk = reopenDisk(t, e, dir)
	f.loseAt = 1 // the first batch
	e.reload = func() (Backend, error) { return otherFormat{newSeqFake(f.vocab, 1000)}, nil }
	if _, err := e.Generate(context.Background(), prompt(1, 50), greedy(3), false, nil); !errors.Is(err, ErrBackendLost) {
		t.Fatalf("err = %v, want ErrBackendLost", err)
	}
	if _, err := e.Generate(context.Background(), prompt(2, 50), greedy(3), false, nil); err != nil {
		t.Fatal(err)
	}
	e.Close()
	want := filepath.Join(dir, modelDir(sha256.Sum256([]byte("model A")), "another backend's tokens"))
	if files := kvFiles(t, dir); len(files) != 1 || filepath.Dir(files[0]) != want {
		t.Errorf("files %v after the close, want one in %s", files, want)
	}
	// Closing the engine released both directories.
	for _, format := range []string{f.KVFormat(), "another backend's tokens"} {
		d, err := openKVDisk(dir, 1<<20, sha256.Sum256([]byte("model A")), format, 4, e.logger)
		if err != nil {
			t.Errorf("after the close, the %q directory: %v", format, err)
			continue
		}
		d.close()
	}
}

// reopenDisk is an engine's openDisk for the backend that replaces a lost one: model A's disk cache in
// dir, in the new backend's format. It runs on the scheduler's goroutine, so a failure is an Errorf.
func reopenDisk(t *testing.T, e *Engine, dir string) func(Backend) *kvDisk {
	return func(b Backend) *kvDisk {
		d, err := openKVDisk(dir, 1<<20, sha256.Sum256([]byte("model A")), b.(KVExporter).KVFormat(), 4, e.logger)
		if err != nil {
			t.Errorf("opening the disk cache for the new backend: %v", err)
		}
		return d
	}
}

// TestKVDiskBackAfterLoss loses the backend twice: the second replacement reads the first backend's
// format again, and the engine goes back to its first directory, which it still holds (opening it
// anew would find it locked and leave the disk cache off).
func TestKVDiskBackAfterLoss(t *testing.T) {
	dir := t.TempDir()
	var log testutil.LogBuffer
	e, f := diskEngine(t, dir, 1<<20, "model A", 1000, &log)
	e.openDisk = reopenDisk(t, e, dir)
	f.loseAt = 1
	second := otherFormat{newSeqFake(f.vocab, 1000)}
	second.loseAt = 1
	third := newSeqFake(f.vocab, 1000)
	backends := []Backend{second, third}
	e.reload = func() (Backend, error) {
		b := backends[0]
		backends = backends[1:]
		return b, nil
	}
	for i := range 2 {
		if _, err := e.Generate(context.Background(), prompt(int32(i+1), 50), greedy(3), false, nil); !errors.Is(err, ErrBackendLost) {
			t.Fatalf("generation %d: err = %v, want ErrBackendLost", i, err)
		}
	}
	if _, err := e.Generate(context.Background(), prompt(3, 50), greedy(3), false, nil); err != nil {
		t.Fatal(err)
	}
	e.Close()
	want := filepath.Join(dir, modelDir(sha256.Sum256([]byte("model A")), f.KVFormat()))
	if files := kvFiles(t, dir); len(files) != 1 || filepath.Dir(files[0]) != want {
		t.Errorf("files %v after the close, want one in the first backend's %s", files, want)
	}
	if strings.Contains(log.String(), "disk cache is off") {
		t.Errorf("the disk cache went off:\n%s", log.String())
	}
}
