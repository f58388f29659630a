package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"smolchat/model"
)

// DefaultKVDiskMax is the most bytes of conversation caches kept on disk when --kv-disk-max is not
// given.
const DefaultKVDiskMax = 2 << 30

// kvDiskVersion changes whenever the file layout below does; files of another version are removed.
const kvDiskVersion = 1

// kvMagic starts every KV file; the \r\n catches a file mangled by a text-mode copy.
const kvMagic = "SMOLKV\r\n"

// minSpill is the fewest positions worth a file: shorter conversations are recomputed in a moment.
const minSpill = minShare

// kvDisk keeps conversations' KV caches in files of a directory, so that a conversation evicted from
// memory, or the whole cache after a restart, is read back instead of evaluated again: reading a
// position's keys and values (72 KiB for SmolLM3-3B) is thousands of times cheaper than computing it.
//
// A file holds one sequence:
//
//	magic "SMOLKV\r\n", version (u32), model identity (32 bytes), backend KV format (u32 length, text),
//	token count n (u32), the n tokens (u32 each), the backend's export of positions 0..n-1
//	(KVExporter), its length in bytes (u64), and the CRC-32C of the header and the positions (u32).
//
// Integers are little endian. A file whose version, model identity or format differs from this
// engine's, or which is truncated or fails its checksum, is removed with a log line and the prompt is
// evaluated as if it had never been cached: a damaged cache costs time, never a wrong answer or an
// error. The files take at most max bytes together; the least recently used go first (their
// modification time records use across restarts). The scheduler's goroutine alone uses a kvDisk.
//
// The files live in a subdirectory of the cache's directory named by the model identity and the format
// (modelDir), and a kvDisk reads, caps and removes nothing outside it: servers of different models, or
// of one model on different backends, can share a data directory without removing each other's files,
// each directory capped by its own server's --kv-disk-max. A directory whose model is gone stays until
// removed by hand; opening the cache logs the others' sizes. A directory serves one server at a time
// (lockDir): a second server of the model and backend on the same data directory runs without the
// disk cache, with a log line saying why.
type kvDisk struct {
	dir    string // root's subdirectory of this model and format
	max    int64
	model  [sha256.Size]byte // modelIdentity
	format string            // the backend's KVFormat
	log    *slog.Logger
	files  []*diskSeq // least recently used first
	// perPos is the estimated bytes of a position, for skipping a sequence that cannot fit under max.
	perPos int64
	lock   *os.File // dir's lock file (lockDir), nil once closed
}

// close releases the directory for another server (the files stay).
func (d *kvDisk) close() {
	if d != nil && d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// diskSeq is one file of a kvDisk.
type diskSeq struct {
	name   string // in dir
	tokens []int32
	size   int64
}

// modelIdentity identifies what a model's keys and values depend on: the file (gguf.File.Fingerprint:
// its size, header, tensor table and sampled weights) and the configuration it was opened with (RoPE
// scaling overrides change every key).
func modelIdentity(m *model.Model) [sha256.Size]byte {
	fp := m.File.Fingerprint()
	h := sha256.New()
	h.Write(fp[:])
	fmt.Fprintf(h, "%+v", m.Config)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

// openKVDisk scans root's subdirectory for this model and format (making them if needed) for KV files:
// those of this model and format are kept, the others removed with a log line. Files of the layout
// before the subdirectories, directly in root, are moved into it when they are this model's and left
// alone when they are not.
func openKVDisk(root string, maxBytes int64, id [sha256.Size]byte, format string, perPos int64, log *slog.Logger) (*kvDisk, error) {
	dir := filepath.Join(root, modelDir(id, format))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("the KV disk cache's directory: %w", err)
	}
	lock, err := lockDir(dir, log)
	if err != nil {
		return nil, err
	}
	d := &kvDisk{dir: dir, max: maxBytes, model: id, format: format, log: log, perPos: max(perPos, 1), lock: lock}
	d.adopt(root)
	ents, err := os.ReadDir(dir)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("the KV disk cache's directory: %w", err)
	}
	type found struct {
		f    *diskSeq
		used time.Time
	}
	var keep []found
	for _, de := range ents {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			// A write that did not finish (or, where the directory cannot be locked, another server's
			// write in progress: hence the hour).
			if st, err := de.Info(); err == nil && time.Since(st.ModTime()) > staleTemp {
				os.Remove(filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, ".kv"):
			f, used, err := d.scan(name)
			if err != nil {
				d.discard(name, err)
				continue
			}
			keep = append(keep, found{f, used})
		}
	}
	sort.SliceStable(keep, func(i, j int) bool { return keep[i].used.Before(keep[j].used) })
	for _, k := range keep {
		d.files = append(d.files, k.f)
	}
	d.trim(nil)
	d.logOthers(root)
	return d, nil
}

// staleTemp is the age past which a temporary file is a write that did not finish: a write in progress
// touches its file every block.
const staleTemp = time.Hour

// modelDir is the name of the subdirectory of a model identity's files in a format: 16 hex digits of
// their hash.
func modelDir(id [sha256.Size]byte, format string) string {
	h := sha256.New()
	h.Write(id[:])
	h.Write([]byte(format))
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// adopt moves the files of this model and format that an older version left directly in root into
// d.dir. Other files there may be another server's: they are left alone.
func (d *kvDisk) adopt(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, de := range ents {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".kv") {
			continue
		}
		f, err := os.Open(filepath.Join(root, de.Name()))
		if err != nil {
			continue
		}
		_, _, err = d.readHeader(bufio.NewReader(f))
		f.Close()
		if err != nil {
			continue
		}
		if err := os.Rename(filepath.Join(root, de.Name()), filepath.Join(d.dir, de.Name())); err != nil {
			d.log.Warn("moving a KV cache file into its model's directory failed; it is left where it is", "err", err)
		}
	}
}

// logOthers says how much of root the other models' and formats' directories take.
func (d *kvDisk) logOthers(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	dirs, size := 0, int64(0)
	for _, de := range ents {
		if !de.IsDir() || filepath.Join(root, de.Name()) == d.dir {
			continue
		}
		dirs++
		filepath.WalkDir(filepath.Join(root, de.Name()), func(_ string, e os.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if st, err := e.Info(); err == nil {
					size += st.Size()
				}
			}
			return nil
		})
	}
	if dirs > 0 {
		d.log.Info("the KV disk cache also holds other models' or backends' conversations, left alone (each capped by its own server's --kv-disk-max); remove a directory by hand when its model is no longer used",
			"dir", root, "this_model", filepath.Base(d.dir), "other_dirs", dirs, "other_bytes", size)
	}
}

// errStale marks a file written for another model, backend format or version.
var errStale = errors.New("stale")

// scan reads a file's header and checks its length (the checksum is checked when it is loaded).
func (d *kvDisk) scan(name string) (*diskSeq, time.Time, error) {
	f, err := os.Open(filepath.Join(d.dir, name))
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	r := bufio.NewReader(f)
	tokens, head, err := d.readHeader(r)
	if err != nil {
		return nil, time.Time{}, err
	}
	var trailer [12]byte
	if st.Size() < head+int64(len(trailer)) {
		return nil, time.Time{}, fmt.Errorf("truncated: %d bytes", st.Size())
	}
	if _, err := f.ReadAt(trailer[:], st.Size()-int64(len(trailer))); err != nil {
		return nil, time.Time{}, err
	}
	if n := binary.LittleEndian.Uint64(trailer[:]); uint64(st.Size()) != uint64(head)+n+uint64(len(trailer)) {
		return nil, time.Time{}, fmt.Errorf("truncated: %d bytes, the trailer says %d", st.Size(), uint64(head)+n+uint64(len(trailer)))
	}
	return &diskSeq{name: name, tokens: tokens, size: st.Size()}, st.ModTime(), nil
}

// readHeader reads a file's header up to its tokens, checking that it was written for this engine; it
// returns the tokens and the header's length.
func (d *kvDisk) readHeader(r io.Reader) ([]int32, int64, error) {
	var fixed [len(kvMagic) + 4 + sha256.Size + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, 0, fmt.Errorf("truncated header: %w", err)
	}
	if string(fixed[:len(kvMagic)]) != kvMagic {
		return nil, 0, errors.New("not a KV file (bad magic)")
	}
	rest := fixed[len(kvMagic):]
	if v := binary.LittleEndian.Uint32(rest); v != kvDiskVersion {
		return nil, 0, fmt.Errorf("%w: written by version %d of the format, this is %d", errStale, v, kvDiskVersion)
	}
	if !bytes.Equal(rest[4:4+sha256.Size], d.model[:]) {
		return nil, 0, fmt.Errorf("%w: written for another model file or configuration", errStale)
	}
	n := binary.LittleEndian.Uint32(rest[4+sha256.Size:])
	if n > 1<<12 {
		return nil, 0, fmt.Errorf("format name of %d bytes", n)
	}
	format := make([]byte, n+4)
	if _, err := io.ReadFull(r, format); err != nil {
		return nil, 0, fmt.Errorf("truncated header: %w", err)
	}
	if string(format[:n]) != d.format {
		return nil, 0, fmt.Errorf("%w: written for another KV format (%q, this backend's is %q)", errStale, format[:n], d.format)
	}
	count := binary.LittleEndian.Uint32(format[n:])
	if count == 0 || count > 1<<24 {
		return nil, 0, fmt.Errorf("%d tokens", count)
	}
	raw := make([]byte, 4*count)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, 0, fmt.Errorf("truncated tokens: %w", err)
	}
	tokens := make([]int32, count)
	for i := range tokens {
		tokens[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return tokens, int64(len(fixed)) + int64(len(format)) + int64(len(raw)), nil
}

// discard removes a file that cannot be used, saying why.
func (d *kvDisk) discard(name string, why error) {
	level := slog.LevelWarn
	if errors.Is(why, errStale) {
		level = slog.LevelInfo
	}
	d.log.Log(context.Background(), level, "removing a KV cache file that cannot be used; its conversation will be evaluated again",
		"file", filepath.Join(d.dir, name), "reason", why)
	if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("removing a KV cache file failed", "file", filepath.Join(d.dir, name), "err", err)
	}
}

// best is the file sharing the longest prefix with prompt, short of its last token, and that length.
func (d *kvDisk) best(prompt []int32) (*diskSeq, int) {
	var best *diskSeq
	keep := 0
	for _, f := range d.files {
		if n := min(commonPrefix(f.tokens, prompt), len(prompt)-1); n > keep {
			best, keep = f, n
		}
	}
	return best, keep
}

// holds reports that a file holds tokens (and maybe more), so writing them again would add nothing.
func (d *kvDisk) holds(tokens []int32) bool {
	for _, f := range d.files {
		if len(f.tokens) >= len(tokens) && slices.Equal(f.tokens[:len(tokens)], tokens) {
			return true
		}
	}
	return false
}

// errAborted is write's error when abort asked it to stop.
var errAborted = errors.New("aborted")

// write saves sequence seq of b, which holds tokens, to a file, blockLen positions at a time; abort,
// when not nil, is asked between them and stops the write (the scheduler has work). Files whose tokens
// are a prefix of these are removed (the new one serves their prompts), then the oldest files until
// the rest fit under max.
func (d *kvDisk) write(b KVExporter, seq SeqID, tokens []int32, blockLen int, abort func() bool) error {
	if d.perPos*int64(len(tokens)) > d.max {
		return fmt.Errorf("%d positions take about %d bytes, more than --kv-disk-max (%d)", len(tokens), d.perPos*int64(len(tokens)), d.max)
	}
	sum := sha256.Sum256(binary.LittleEndian.AppendUint32(nil, uint32(len(tokens))))
	h := sha256.New()
	h.Write(sum[:])
	for _, t := range tokens {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(t)))
	}
	name := fmt.Sprintf("%x.kv", h.Sum(nil)[:12])
	path := filepath.Join(d.dir, name)
	tmp, err := os.CreateTemp(d.dir, name+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	size, err := d.writeTo(tmp, b, seq, tokens, blockLen, abort)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d.files = slices.DeleteFunc(d.files, func(f *diskSeq) bool {
		if f.name == name {
			return true
		}
		if len(f.tokens) <= len(tokens) && slices.Equal(f.tokens, tokens[:len(f.tokens)]) {
			d.remove(f)
			return true
		}
		return false
	})
	f := &diskSeq{name: name, tokens: slices.Clone(tokens), size: size}
	d.files = append(d.files, f)
	d.trim(f)
	d.log.Debug("wrote a conversation's KV cache to disk", "file", path, "tokens", len(tokens), "bytes", size)
	return nil
}

// writeTo writes a file's bytes to w and returns their count.
func (d *kvDisk) writeTo(w io.Writer, b KVExporter, seq SeqID, tokens []int32, blockLen int, abort func() bool) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	cw := &countWriter{w: io.MultiWriter(bw, crc)}
	head := []byte(kvMagic)
	head = binary.LittleEndian.AppendUint32(head, kvDiskVersion)
	head = append(head, d.model[:]...)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(d.format)))
	head = append(head, d.format...)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(tokens)))
	for _, t := range tokens {
		head = binary.LittleEndian.AppendUint32(head, uint32(t))
	}
	cw.Write(head)
	for from := 0; from < len(tokens); from += blockLen {
		if abort != nil && abort() {
			return 0, errAborted
		}
		if err := b.ExportSeq(seq, from, min(from+blockLen, len(tokens)), cw); err != nil {
			return 0, err
		}
	}
	if cw.err != nil {
		return 0, cw.err
	}
	trailer := binary.LittleEndian.AppendUint64(nil, uint64(cw.n-int64(len(head))))
	trailer = binary.LittleEndian.AppendUint32(trailer, crc.Sum32())
	cw.w = bw // the trailer is not part of the checksum
	cw.Write(trailer)
	if cw.err != nil {
		return 0, cw.err
	}
	return cw.n, bw.Flush()
}

// countWriter counts the bytes written through it and keeps the first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// load reads file f into a new sequence of b. A file that is damaged or stale is removed and reported
// with a log line; the error then says so (the caller evaluates the prompt instead). An error wrapping
// ErrKVFull or ErrBackendLost leaves the file: the pool had no room for it, or the device failed.
func (d *kvDisk) load(b SeqBackend, x KVExporter, f *diskSeq) (SeqID, error) {
	seq, err := d.read(b, x, f)
	if err != nil && !errors.Is(err, ErrKVFull) && !errors.Is(err, ErrBackendLost) {
		d.files = slices.DeleteFunc(d.files, func(g *diskSeq) bool { return g == f })
		d.discard(f.name, err)
		return 0, err
	}
	if err == nil {
		d.files = slices.DeleteFunc(d.files, func(g *diskSeq) bool { return g == f })
		d.files = append(d.files, f)
		now := time.Now()
		os.Chtimes(filepath.Join(d.dir, f.name), now, now) // its use, for the order after a restart
	}
	return seq, err
}

func (d *kvDisk) read(b SeqBackend, x KVExporter, f *diskSeq) (SeqID, error) {
	file, err := os.Open(filepath.Join(d.dir, f.name))
	if err != nil {
		return 0, err
	}
	defer file.Close()
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	r := &hashReader{r: bufio.NewReaderSize(file, 1<<20), h: crc}
	tokens, _, err := d.readHeader(r)
	if err != nil {
		return 0, err
	}
	if !slices.Equal(tokens, f.tokens) {
		return 0, errors.New("the file changed since the cache was scanned")
	}
	start := r.n
	seq, err := x.ImportSeq(r, len(tokens))
	if err != nil {
		return 0, err
	}
	payload := r.n - start
	want := crc.Sum32()
	var trailer [12]byte
	_, err = io.ReadFull(r.r, trailer[:])
	switch {
	case err != nil:
		err = fmt.Errorf("truncated: %w", err)
	case binary.LittleEndian.Uint64(trailer[:]) != uint64(payload):
		err = fmt.Errorf("the positions take %d bytes, the trailer says %d", payload, binary.LittleEndian.Uint64(trailer[:]))
	case binary.LittleEndian.Uint32(trailer[8:]) != want:
		err = fmt.Errorf("checksum mismatch (CRC-32C %08x, the file says %08x)", want, binary.LittleEndian.Uint32(trailer[8:]))
	default:
		if _, extra := r.r.ReadByte(); extra == nil {
			err = errors.New("bytes after the checksum")
		}
	}
	if err != nil {
		b.FreeSeq(seq)
		return 0, err
	}
	return seq, nil
}

// hashReader hashes and counts the bytes read through it.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash32
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// remove deletes file f (not from d.files: the caller does).
func (d *kvDisk) remove(f *diskSeq) {
	if err := os.Remove(filepath.Join(d.dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("removing a KV cache file failed", "file", filepath.Join(d.dir, f.name), "err", err)
	}
}

// trim removes the least recently used files until the rest take at most max bytes, keep last.
func (d *kvDisk) trim(keep *diskSeq) {
	total := int64(0)
	for _, f := range d.files {
		total += f.size
	}
	for len(d.files) > 0 && total > d.max {
		i := 0
		if d.files[0] == keep && len(d.files) > 1 {
			i = 1
		}
		f := d.files[i]
		d.remove(f)
		total -= f.size
		d.files = slices.Delete(d.files, i, i+1)
	}
}
