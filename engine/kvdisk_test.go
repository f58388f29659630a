package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
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

// syncBuffer is a log destination the scheduler's goroutine writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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

func kvFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
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
	var log syncBuffer
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
		name     string
		damage   func(t *testing.T, path string)
		identity string
		why      string
	}{
		{"flipped payload byte", flip(payload), "model A", "checksum mismatch"},
		{"flipped checksum", flip(func(size int) int { return size - 1 }), "model A", "checksum mismatch"},
		{"flipped magic", flip(func(int) int { return 0 }), "model A", "bad magic"},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 300); err != nil {
				t.Fatal(err)
			}
		}, "model A", "truncated"},
		{"empty", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "model A", "truncated"},
		{"other version", flip(func(int) int { return len(kvMagic) }), "model A", "version"},
		{"other model", nil, "model B", "another model"},
		{"other format", flip(func(int) int { return len(kvMagic) + 4 + sha256.Size + 4 }), "model A", "another KV format"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var log syncBuffer
			first, answer, file := firstTurn(t, dir, &log)
			if c.damage != nil {
				c.damage(t, file)
			}
			e2, f2 := diskEngine(t, dir, 1<<20, c.identity, 1000, &log)
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
	var log syncBuffer
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
	var log syncBuffer
	e, f := diskEngine(t, dir, 1<<20, "model A", 20, &log) // 20 blocks of 4: one 60-token conversation
	idle := make(chan struct{}, 16)
	e.scheduler().onIdle = func() { idle <- struct{}{} }
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
