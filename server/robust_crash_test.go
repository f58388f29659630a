package server

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"smolchat/engine"
	"smolchat/server/store"
)

// crashHelperEnv names the data directory of the child process TestCrashKeepsHistory kills.
const crashHelperEnv = "SMOLCHAT_CRASH_HELPER_DATA"

// TestCrashHelperProcess is not a test: it is the server that TestCrashKeepsHistory runs in a child
// process (this test binary, started again) and kills. It serves the test double on a loopback port,
// prints the address and waits to be killed.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		return // run only as the child
	}
	f := newFake()
	f.delay = 5 * time.Millisecond
	f.thinkWords = 0
	s, err := New(Config{DataDir: dir, Log: slog.New(slog.DiscardHandler)}, holdDoomed{f})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR http://" + ln.Addr().String())
	go s.Serve(ln)
	time.Sleep(time.Hour)
}

// holdDoomed answers "doomed question" with a few words and then holds the answer until the process is
// killed, so that the kill always comes mid-answer however slow the other clients are.
type holdDoomed struct{ *fakeGen }

func (g holdDoomed) Chat(ctx context.Context, req engine.ChatRequest, emit func(engine.Delta) error) (engine.Result, error) {
	if req.Messages[len(req.Messages)-1].Content != "doomed question" {
		return g.fakeGen.Chat(ctx, req, emit)
	}
	for i := range 5 {
		if err := emit(engine.Delta{Answer: fmt.Sprintf(" word%d", i)}); err != nil {
			break
		}
	}
	<-ctx.Done()
	return engine.Result{FinishReason: engine.FinishCancelled}, nil
}

// TestCrashKeepsHistory kills the server (SIGKILL, no chance to clean up) while one answer streams and
// other clients are writing new chats, then opens the history database again: it opens cleanly (WAL
// mode, integrity check ok), every finished conversation is intact, every message whose request was
// answered before the kill is there, and only the answer that was streaming is lost.
func TestCrashKeepsHistory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("skipping: the crash test kills a child process with SIGKILL, which Windows lacks")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(out)
	var base string
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "ADDR "); ok {
			base = a
			break
		}
	}
	if base == "" {
		t.Fatal("the child server never reported its address")
	}
	go io.Copy(io.Discard, out)

	// Finished conversations, two turns each.
	b := newBrowser(t, base)
	type turn struct{ user, answer string }
	f := newFake()
	finished := map[string][]turn{}
	for i := range 3 {
		conv := ""
		for j := range 2 {
			text := fmt.Sprintf("conv%d-turn%d hello", i, j)
			c, sid, _ := b.send(conv, text, false)
			conv = c
			if last := lastEvent(t, b.stream(sid, nil)); last.Name != "done" {
				t.Fatalf("answer %d/%d: last event %+v", i, j, last)
			}
			finished[conv] = append(finished[conv], turn{text, f.expectedAnswer(text)})
		}
	}

	// Writers keep creating chats while the server is killed; each records the chats it was told exist.
	stop := make(chan struct{})
	var mu sync.Mutex
	acked := map[string]string{} // conversation → its first message, for every POST /chat answered 200
	const ackedBeforeKill = 4    // the kill comes once this many chats were acknowledged
	going := make(chan struct{}) // closed then
	var wg sync.WaitGroup
	for w := range 2 {
		wb := newBrowser(t, base)
		wb.client.Timeout = 2 * time.Second
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("writer%d-%d", w, n)
				req, _ := http.NewRequest("POST", base+"/chat", strings.NewReader(url.Values{"content": {text}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("HX-Request", "true")
				req.Header.Set("X-CSRF-Token", wb.token)
				resp, err := wb.client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if p := resp.Header.Get("HX-Push-Url"); resp.StatusCode == 200 && p != "" {
					mu.Lock()
					acked[strings.TrimPrefix(p, "/c/")] = text
					if len(acked) == ackedBeforeKill {
						close(going)
					}
					mu.Unlock()
				}
			}
		})
	}

	// The answer that is streaming when the server dies.
	conv, sid, _ := b.send("", "doomed question", false)
	resp := b.openStream(sid, 3)
	if _, err := os.Stat(filepath.Join(dir, "smolchat.db-wal")); err != nil {
		t.Errorf("no write-ahead log next to the database while serving: %v", err)
	}
	select { // the writers are creating chats
	case <-going:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %d chats acknowledged in 30 s", ackedBeforeKill)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()
	resp.Body.Close()
	close(stop)
	wg.Wait()

	// The database opens cleanly and holds everything that was acknowledged.
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(filepath.Join(dir, "smolchat.db")))
	if err != nil {
		t.Fatal(err)
	}
	var check, mode string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity check after the kill: %q, %v", check, err)
	}
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v; want wal", mode, err)
	}
	db.Close()
	st, err := store.Open(filepath.Join(dir, "smolchat.db"))
	if err != nil {
		t.Fatalf("reopening the history after the kill: %v", err)
	}
	ctx := context.Background()
	for id, turns := range finished {
		msgs, err := st.Messages(ctx, id)
		if err != nil {
			t.Fatalf("finished conversation %s: %v", id, err)
		}
		if len(msgs) != 2*len(turns) {
			t.Fatalf("finished conversation %s has %d messages, want %d", id, len(msgs), 2*len(turns))
		}
		for i, tr := range turns {
			u, a := msgs[2*i], msgs[2*i+1]
			if u.Role != "user" || u.Content != tr.user || a.Role != "assistant" || a.Content != tr.answer || a.FinishReason != "stop" {
				t.Errorf("conversation %s turn %d: %q → %q (%s), want %q → %q", id, i, u.Content, a.Content, a.FinishReason, tr.user, tr.answer)
			}
		}
	}
	msgs, err := st.Messages(ctx, conv)
	if err != nil || len(msgs) != 1 || msgs[0].Content != "doomed question" {
		t.Fatalf("the conversation whose answer was streaming: %+v, %v; want its question alone", msgs, err)
	}
	if len(acked) < ackedBeforeKill {
		t.Fatalf("%d chats acknowledged before the kill, want at least %d", len(acked), ackedBeforeKill)
	}
	for id, text := range acked { // the writers have stopped
		msgs, err := st.Messages(ctx, id)
		if err != nil || len(msgs) == 0 || msgs[0].Content != text {
			t.Errorf("acknowledged chat %s (%q) lost: %+v, %v", id, text, msgs, err)
		}
	}
	all, err := st.Conversations(ctx, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("after SIGKILL mid-answer: %d conversations in the database, %d finished ones intact, %d chats acknowledged to writers during the kill all present; the streaming answer (3 tokens sent) was lost, its question kept",
		len(all), len(finished), len(acked))

	// A new server serves the history from the same directory.
	_, base2 := startServer(t, newFake(), Config{DataDir: dir})
	b2 := newBrowser(t, base2)
	for id, turns := range finished {
		if page := b2.get("/c/" + id); !strings.Contains(page, turns[1].user) {
			t.Errorf("the restarted server's page for %s lacks %q", id, turns[1].user)
		}
	}
}
