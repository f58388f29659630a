package server

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestHostPolicy: which Host names the server answers to, by the address it listens on.
func TestHostPolicy(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 8080} }
	tests := []struct {
		name    string
		listen  net.Addr
		allowed []string
		yes, no []string
	}{
		{"loopback", tcp("127.0.0.1"), nil,
			[]string{"127.0.0.1:8080", "localhost:8080", "LOCALHOST", "localhost.", "[::1]:8080", "[::1]", "127.0.0.1"},
			[]string{"evil.example:8080", "evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "192.168.1.5:8080", "", ":8080"}},
		{"not known yet (app.Test)", nil, nil,
			[]string{"127.0.0.1", "localhost:1234"},
			[]string{"example.com", "evil.example"}},
		{"IPv6 loopback", tcp("::1"), nil,
			[]string{"[::1]:8080", "localhost", "[0:0:0:0:0:0:0:1]:8080"},
			[]string{"evil.example"}},
		{"every interface", tcp("0.0.0.0"), nil,
			[]string{"192.168.1.5:8080", "10.0.0.7", "[fe80::1]:8080", "localhost:8080", "127.0.0.1"},
			[]string{"evil.example:8080", "mybox.lan", "192.168.1.5.nip.io"}},
		{"every interface, IPv6", tcp("::"), nil,
			[]string{"192.168.1.5", "[2001:db8::1]:8080"},
			[]string{"evil.example"}},
		{"one LAN address", tcp("192.168.1.5"), nil,
			[]string{"192.168.1.5:8080"},
			[]string{"192.168.1.6", "localhost", "evil.example"}},
		{"allowed names", tcp("127.0.0.1"), []string{"chat.example.com", "MyBox.lan:8443"},
			[]string{"chat.example.com", "CHAT.example.com:443", "mybox.lan:8080", "localhost"},
			[]string{"example.com", "evil.chat.example.com.evil.example"}},
		{"any", tcp("127.0.0.1"), []string{"*"},
			[]string{"evil.example:8080", "anything"}, nil},
	}
	for _, tt := range tests {
		p := newHostPolicy(tt.allowed, tt.listen)
		for _, h := range tt.yes {
			if !p.allows(h) {
				t.Errorf("%s: Host %q refused", tt.name, h)
			}
		}
		for _, h := range tt.no {
			if p.allows(h) {
				t.Errorf("%s: Host %q allowed", tt.name, h)
			}
		}
	}
}

func TestAllowedHostsChecked(t *testing.T) {
	for _, bad := range []string{"http://chat.example", "chat.example/path", "user@chat.example", "*.example", "[]"} {
		if _, err := New(Config{DataDir: t.TempDir(), AllowedHosts: []string{bad}}, nil); err == nil ||
			!strings.Contains(err.Error(), "not a host name") {
			t.Errorf("allowed host %q: error %v, want one saying it is not a host name", bad, err)
		}
	}
	var logs bytes.Buffer
	s, err := New(Config{DataDir: t.TempDir(), AllowedHosts: []string{" *"}, Log: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "DNS rebinding") {
		t.Errorf("allowed hosts '*' logged no warning: %q", logs.String())
	}
}

// TestDNSRebinding: a request whose Host names another site (as a page that rebound its domain to this
// machine sends) is refused with 421 and sees nothing of the history, on every kind of route; an Origin
// is checked against the server's own names, never against the request's Host.
func TestDNSRebinding(t *testing.T) {
	f := newFake()
	_, base := startServer(t, f, Config{})
	_, allowedBase := startServer(t, newFake(), Config{AllowedHosts: []string{"chat.example"}})
	b := newBrowser(t, base)
	const title = "rebinding target"
	conv, sid, _ := b.send("", title, false)
	b.stream(sid, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	_, allowedPort, _ := net.SplitHostPort(strings.TrimPrefix(allowedBase, "http://"))

	tests := []struct {
		name, base, method, path, host, origin string
		want                                   int
	}{
		{"page, own address", base, "GET", "/", "127.0.0.1:" + port, "", 200},
		{"page, localhost", base, "GET", "/", "localhost:" + port, "", 200},
		{"page, rebound name", base, "GET", "/", "evil.example:" + port, "", 421},
		{"conversation, rebound name", base, "GET", "/c/" + conv, "evil.example:" + port, "", 421},
		{"export, rebound name", base, "GET", "/c/" + conv + "/export/md", "evil.example", "", 421},
		{"API, rebound name", base, "GET", "/v1/models", "evil.example:" + port, "", 421},
		{"health, rebound name", base, "GET", "/health", "evil.example:" + port, "", 421},
		{"metrics, rebound name", base, "GET", "/metrics", "evil.example:" + port, "", 421},
		{"name with our address in it", base, "GET", "/", "127.0.0.1.evil.example:" + port, "", 421},
		{"send, foreign Origin", base, "POST", "/chat", "", "http://evil.example:" + port, 403},
		{"send, Origin null", base, "POST", "/chat", "", "null", 403},
		{"send, own Origin", base, "POST", "/chat", "", "http://127.0.0.1:" + port, 200},
		{"send, localhost Origin", base, "POST", "/chat", "", "http://localhost:" + port, 200},
		{"send, Origin on another port", base, "POST", "/chat", "", "http://localhost:9", 403},
		{"allowed name", allowedBase, "GET", "/health", "chat.example:" + allowedPort, "", 200},
		{"allowed name behind a proxy", allowedBase, "GET", "/health", "CHAT.example", "", 200},
		{"other name", allowedBase, "GET", "/health", "evil.example", "", 421},
	}
	before := f.requestCount()
	if load, post := rebindingSend(t, base); load != 421 || post != 421 || f.requestCount() != before {
		t.Errorf("a rebinding page: load %d, post %d, %d model requests; want 421, 421, none", load, post,
			f.requestCount()-before)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(url.Values{"content": {"hi"}, "conversation": {conv}}.Encode())
			}
			req, _ := http.NewRequest(tt.method, tt.base+tt.path, body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-CSRF-Token", b.token)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := b.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tt.want, out)
			}
			if resp.StatusCode == 200 && tt.method == "POST" {
				if m := streamAttr.FindStringSubmatch(string(out)); m != nil {
					b.stream(m[1], nil) // let the answer finish before the next send
				}
			}
			if tt.want == 421 {
				if strings.Contains(string(out), title) {
					t.Errorf("the refusal shows the history: %.300s", out)
				}
				if !strings.Contains(string(out), "--allowed-hosts") {
					t.Errorf("the refusal does not say how to allow the name: %.300s", out)
				}
			}
		})
	}
}

// rebindingSend is what a page on evil.example does once its name resolves to the server: it loads the
// chat (which hands it a CSRF cookie and token of its own), then posts a message with them, Host and
// Origin both naming evil.example. It also sends X-Forwarded-Host with the server's own address, which
// a page can add to its same-origin requests. It returns the two statuses.
func rebindingSend(t *testing.T, base string) (load, post int) {
	t.Helper()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	evil := "evil.example:" + port
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = evil
	req.Header.Set("X-Forwarded-Host", "127.0.0.1:"+port)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := ""
	if m := metaToken.FindSubmatch(page); m != nil {
		token = string(m[1])
	}
	req, _ = http.NewRequest("POST", base+"/chat", strings.NewReader(url.Values{"content": {"exfiltrate"}}.Encode()))
	req.Host = evil
	req.Header.Set("X-Forwarded-Host", "127.0.0.1:"+port)
	req.Header.Set("Origin", "http://"+evil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", token)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	return resp.StatusCode, send(t, httpClient, req).StatusCode
}
