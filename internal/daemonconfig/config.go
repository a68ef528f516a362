package daemonconfig

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/internal/conffile"
	"github.com/nftrtpproxy/nftrtpproxy/notify"
	"github.com/nftrtpproxy/nftrtpproxy/replication"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Config is the daemon's validated configuration.
type Config struct {
	// Config is the session engine's part: the state directory and the
	// switchboards.
	*switchboard.Config
	// Control lists the addresses of the control front ends.
	Control Control
	// Replication configures a router pair.
	Replication replication.Config
	// Notify says how the SIP proxy hears of calls the relay ended.
	Notify notify.Config
}

// Load reads and validates the configuration file at path; errors name the
// file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration document. Unknown keys are
// reported first, as a misspelt key often shows only as a setting missing.
func Parse(b []byte) (*Config, error) {
	f, err := conffile.Parse(b)
	if err != nil {
		return nil, err
	}
	ctl, ctlErr := decodeControl(f)
	engine, engineErr := switchboard.DecodeConfig(f)
	var sbs []*switchboard.Switchboard
	if engine != nil {
		sbs = engine.Switchboards
	}
	rep, repErr := replication.DecodeConfig(f, sbs, ctl.udpAddrs())
	ntf, ntfErr := notify.DecodeConfig(f)
	if err := f.Unknown(); err != nil {
		return nil, err
	}
	for _, err := range []error{ctlErr, engineErr, ctl.checkDefault(engine), repErr, ntfErr} {
		if err != nil {
			return nil, err
		}
	}
	return &Config{Config: engine, Control: ctl, Replication: rep, Notify: ntf}, nil
}

// Control holds the listen addresses of the control protocols. An empty
// address disables that front end: nothing listens unless named.
type Control struct {
	HTTP       string
	NG         string
	RTPProxy   string
	LRKProxy   string
	MediaProxy string
	// DefaultSwitchboard routes requests that name no switchboard (the
	// call layer's routing takes it explicitly).
	DefaultSwitchboard string
	// ReplyCacheBytes is each reply cache's budget in bytes (keys and
	// replies): the oldest replies leave first when it is spent.
	ReplyCacheBytes int
	// SocketGroup, when set, owns the unix control sockets (mode 0660).
	SocketGroup string
	// Allow lists the source networks each network control socket
	// answers; datagrams and connections from elsewhere are dropped.
	Allow Allow
	// Metrics serves Prometheus metrics on /metrics (TCP); empty: none.
	Metrics string
}

// Allow holds the source networks per network control socket.
type Allow struct {
	HTTP, NG, RTPProxy, LRKProxy []netip.Prefix
}

// DefaultReplyCacheBytes is [control] reply-cache-bytes when unset: 16 MiB
// per cache holds some 50,000 ordinary replies (about 300 bytes each).
const DefaultReplyCacheBytes = 16 << 20

// defaultAllow is every allow list that is unset: the loopback networks.
var defaultAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

type rawControl struct {
	HTTP               string   `toml:"http"`
	NG                 string   `toml:"ng"`
	RTPProxy           string   `toml:"rtpproxy"`
	LRKProxy           string   `toml:"lrkproxy"`
	MediaProxy         string   `toml:"mediaproxy"`
	DefaultSwitchboard string   `toml:"default-switchboard"`
	ReplyCacheBytes    *int     `toml:"reply-cache-bytes"`
	SocketGroup        string   `toml:"socket-group"`
	HTTPAllow          []string `toml:"http-allow"`
	NGAllow            []string `toml:"ng-allow"`
	RTPProxyAllow      []string `toml:"rtpproxy-allow"`
	LRKProxyAllow      []string `toml:"lrkproxy-allow"`
	Metrics            string   `toml:"metrics"`
}

// decodeControl decodes and validates [control]; errors start with
// "control: ".
func decodeControl(f *conffile.File) (Control, error) {
	var r rawControl
	if err := f.Decode("control", &r); err != nil {
		return Control{}, err
	}
	c, err := r.validate()
	if err != nil {
		return Control{}, fmt.Errorf("control: %w", err)
	}
	return c, nil
}

func (r rawControl) validate() (Control, error) {
	c := Control{HTTP: r.HTTP, NG: r.NG, RTPProxy: r.RTPProxy, LRKProxy: r.LRKProxy,
		MediaProxy: r.MediaProxy, DefaultSwitchboard: r.DefaultSwitchboard,
		ReplyCacheBytes: DefaultReplyCacheBytes, SocketGroup: r.SocketGroup, Metrics: r.Metrics}
	if r.ReplyCacheBytes != nil {
		if *r.ReplyCacheBytes < 1<<10 {
			return c, fmt.Errorf("reply-cache-bytes %d: want at least 1024", *r.ReplyCacheBytes)
		}
		c.ReplyCacheBytes = *r.ReplyCacheBytes
	}
	for _, l := range []struct {
		key string
		raw []string
		out *[]netip.Prefix
	}{
		{"http-allow", r.HTTPAllow, &c.Allow.HTTP},
		{"ng-allow", r.NGAllow, &c.Allow.NG},
		{"rtpproxy-allow", r.RTPProxyAllow, &c.Allow.RTPProxy},
		{"lrkproxy-allow", r.LRKProxyAllow, &c.Allow.LRKProxy},
	} {
		p, err := parseAllow(l.key, l.raw)
		if err != nil {
			return c, err
		}
		*l.out = p
	}
	return c, nil
}

// parseAllow reads an allow list of networks ("10.0.0.0/8") or addresses
// ("192.0.2.7"); unset, it is the loopback networks.
func parseAllow(key string, raw []string) ([]netip.Prefix, error) {
	if raw == nil {
		return defaultAllow, nil
	}
	out := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%s: %q is not a network or address", key, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// checkDefault reports a default switchboard that engine does not define;
// nil engine (it did not validate) checks nothing.
func (c Control) checkDefault(engine *switchboard.Config) error {
	if d := c.DefaultSwitchboard; d != "" && engine != nil && engine.Switchboard(d) == nil {
		return fmt.Errorf("control: default-switchboard %q is not defined", d)
	}
	return nil
}

// udpAddrs are the addresses the UDP control sockets (ng, lrkproxy,
// rtpproxy "udp:") bind, for the default role addresses of a router pair.
func (c Control) udpAddrs() []netip.Addr {
	var out []netip.Addr
	rtpproxy, _ := strings.CutPrefix(c.RTPProxy, "udp:")
	for _, hp := range []string{c.NG, c.LRKProxy, rtpproxy} {
		if ap, err := netip.ParseAddrPort(hp); err == nil {
			out = append(out, ap.Addr())
		}
	}
	return out
}
