package server

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Defence against DNS rebinding. A page on evil.example can make its own name resolve to 127.0.0.1
// (or to this machine's LAN address) after it has loaded; the browser then sends the page's requests to
// smolchat as same-origin requests to evil.example, and lets the page read the answers. What gives such a
// request away is its Host header: it always carries the attacker's domain name, since the browser
// only ever saw that name. So the server answers only to the Host names it knows to be its own:
//
//   - the address it listens on;
//   - localhost, 127.0.0.1 and [::1] when that address is a loopback one;
//   - every IP literal, and localhost, when it listens on all interfaces (0.0.0.0 or ::): an IP literal
//     involves no DNS lookup and so cannot be rebound, and this keeps LAN access by address working
//     without flags;
//   - the names given with --allowed-hosts (Config.AllowedHosts), e.g. a LAN name or a reverse proxy's
//     name; "*" turns the check off.
//
// Only the name is compared, not the port: a reverse proxy may forward another port than it was asked for.
// Before Serve tells it the listen address (tests that call app.Test), the server assumes a loopback one.
//
// The Origin of a POST is checked against the same names, never against the request's Host, which a
// rebinding page controls. There the port counts too, except for --allowed-hosts names (a proxy's port is
// not the server's): a page on another port of localhost is another origin, and the browser says so.

// hostPolicy is the set of Host names the server answers to.
type hostPolicy struct {
	anyHost bool            // --allowed-hosts '*'
	anyIP   bool            // listening on all interfaces: every IP literal
	names   map[string]bool // canonical names (see hostName)
	extra   map[string]bool // the names of --allowed-hosts
	port    string          // the listen port; "" while not known
}

// loopbackNames are the Host names of this machine that no one else can resolve.
var loopbackNames = []string{"localhost", "127.0.0.1", "::1"}

// newHostPolicy builds the policy for a server listening on listen (nil: not known yet, taken as
// loopback) with the extra names in allowed, which parseAllowedHosts has checked.
func newHostPolicy(allowed []string, listen net.Addr) *hostPolicy {
	p := &hostPolicy{names: map[string]bool{}, extra: map[string]bool{}}
	for _, h := range allowed {
		if h == "*" {
			p.anyHost = true
		}
		p.names[hostName(h)] = true
		p.extra[hostName(h)] = true
	}
	var ip net.IP
	if tcp, ok := listen.(*net.TCPAddr); ok {
		ip, p.port = tcp.IP, strconv.Itoa(tcp.Port)
	}
	switch {
	case ip == nil: // not known, or not TCP (a Unix socket is local too)
		p.addLoopback()
	case ip.IsUnspecified():
		p.anyIP = true
		p.names["localhost"] = true
	case ip.IsLoopback():
		p.addLoopback()
		p.names[ip.String()] = true
	default:
		p.names[ip.String()] = true
	}
	return p
}

func (p *hostPolicy) addLoopback() {
	for _, n := range loopbackNames {
		p.names[n] = true
	}
}

// allows reports whether the server answers to hostport, a Host header or an Origin's host.
func (p *hostPolicy) allows(hostport string) bool {
	if p.anyHost {
		return true
	}
	name := hostName(hostport)
	if name == "" {
		return false
	}
	return p.names[name] || (p.anyIP && net.ParseIP(name) != nil)
}

// allowsOrigin reports whether a request's Origin, as URL u, is a page of this server.
func (p *hostPolicy) allowsOrigin(u *url.URL) bool {
	if p.anyHost || p.extra[hostName(u.Host)] {
		return true
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	return p.allows(u.Host) && (p.port == "" || port == p.port)
}

// hostName is the canonical name in a Host header or an --allowed-hosts entry: lower case, without the
// port, the brackets of an IPv6 literal or the trailing dot of a fully qualified name.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	} else {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip := net.ParseIP(h); ip != nil {
		return ip.String() // one spelling per address: ::1, not 0:0:0:0:0:0:0:1
	}
	return h
}

// parseAllowedHosts checks Config.AllowedHosts: each entry is "*", an IP address or a host name, with
// or without a port.
func parseAllowedHosts(list []string) ([]string, error) {
	var out []string
	for _, h := range list {
		h = strings.TrimSpace(h)
		switch name := hostName(h); {
		case h == "":
			continue
		case h == "*":
		case name == "" || strings.ContainsAny(name, "/?#@ *") || strings.Contains(h, "://"):
			return nil, fmt.Errorf("server: allowed host %q is not a host name: give names such as chat.example.com or 192.168.1.20, without a scheme or path", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// checkHost refuses requests whose Host the server does not answer to (see hostPolicy).
func (s *Server) checkHost(c *fiber.Ctx) error {
	// The Host the browser sent: not c.Hostname(), which prefers X-Forwarded-Host, a header the rebinding
	// page may set on its own requests.
	host := string(c.Request().URI().Host())
	if s.hosts.Load().allows(host) {
		return c.Next()
	}
	s.setSecurityHeaders(c)
	return fiber.NewError(fiber.StatusMisdirectedRequest, fmt.Sprintf(
		"this server does not answer to the host name %q (a protection against DNS rebinding): "+
			"if it is this server's name, add it with --allowed-hosts (SMOLCHAT_ALLOWED_HOSTS)", hostName(host)))
}

// originAllowed reports whether origin, a request's Origin header, names a host the server answers to.
// Comparing with the request's Host instead would prove nothing: a rebinding page controls both.
func (s *Server) originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && s.hosts.Load().allowsOrigin(u)
}
