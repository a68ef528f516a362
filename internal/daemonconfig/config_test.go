package daemonconfig

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nftrtpproxy/nftrtpproxy/notify"
	"github.com/nftrtpproxy/nftrtpproxy/replication"
)

var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// documented uses every key of the daemon's tables: [control] in full,
// [notify] and [replication], next to the engine's keys.
const documented = `
state-dir = "/var/lib/nftrtpproxy"

[control]
http = "127.0.0.1:7781"
ng = "127.0.0.1:2223"
rtpproxy = "udp:127.0.0.1:22223"
lrkproxy = "127.0.0.1:22333"
mediaproxy = "/run/nftrtpproxy/dispatcher.sock"
default-switchboard = "edge"
reply-cache-bytes = 8388608
socket-group = "kamailio"
http-allow = ["127.0.0.1"]
ng-allow = ["127.0.0.0/8", "10.0.0.0/8"]
rtpproxy-allow = ["::1"]
lrkproxy-allow = []
metrics = "127.0.0.1:9780"

[notify]
xmlrpc-url = "http://127.0.0.1:8000/RPC2"
xmlrpc-format = "teardown"

[replication]
redis = "10.9.0.1:6379"

[defaults]
max-sessions = 5000

[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-39999" }
gate-b = { name = "internal", address = "10.0.0.1",  ports = "30000-39999", learn = "any" }
`

func TestDocumentedSchemaParses(t *testing.T) {
	t.Parallel()
	got, err := Parse([]byte(documented))
	if err != nil {
		t.Fatal(err)
	}
	want := Control{HTTP: "127.0.0.1:7781", NG: "127.0.0.1:2223", RTPProxy: "udp:127.0.0.1:22223",
		LRKProxy: "127.0.0.1:22333", MediaProxy: "/run/nftrtpproxy/dispatcher.sock", DefaultSwitchboard: "edge",
		ReplyCacheBytes: 8 << 20, SocketGroup: "kamailio",
		Allow: Allow{HTTP: prefixes("127.0.0.1/32"), NG: prefixes("127.0.0.0/8", "10.0.0.0/8"),
			RTPProxy: prefixes("::1/128"), LRKProxy: []netip.Prefix{}},
		Metrics: "127.0.0.1:9780"}
	if diff := cmp.Diff(want, got.Control, addrs); diff != "" {
		t.Errorf("control (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(notify.Config{XMLRPCURL: "http://127.0.0.1:8000/RPC2", XMLRPCFormat: notify.XMLRPCTeardown}, got.Notify); diff != "" {
		t.Errorf("notify (-want +got):\n%s", diff)
	}
	if !got.Replication.Enabled() || got.Replication.Redis != "10.9.0.1:6379" {
		t.Errorf("replication = %+v", got.Replication)
	}
	if got.StateDir != "/var/lib/nftrtpproxy" || len(got.Switchboards) != 1 || got.Switchboards[0].MaxSessions != 5000 {
		t.Errorf("engine = %+v", got.Config)
	}
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// base is the smallest valid configuration; cases add tables to it.
const base = `state-dir = "/var/lib/nftrtpproxy"
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30003" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30003" }
`

// with returns base with tables put before its [[switchboard]].
func with(tables string) string {
	return strings.Replace(base, "[[switchboard]]", tables+"\n[[switchboard]]", 1)
}

var goodConfigs = []struct {
	name, toml string
	check      func(*Config) string // what to look at; "" when as expected
}{
	{"the smallest config gets the default limits, no API, no notifications and no pair", base, func(c *Config) string {
		want := Control{ReplyCacheBytes: DefaultReplyCacheBytes,
			Allow: Allow{HTTP: defaultAllow, NG: defaultAllow, RTPProxy: defaultAllow, LRKProxy: defaultAllow}}
		return cmp.Diff(want, c.Control, addrs) + cmp.Diff(notify.Config{XMLRPCFormat: notify.XMLRPCKamailio}, c.Notify) +
			cmp.Diff(replication.Config{}, c.Replication)
	}},
	{"limits, the socket group and allow lists are read", with("[control]\nreply-cache-bytes = 4096\nsocket-group = \"kamailio\"\nng-allow = [\"10.0.0.0/8\", \"192.0.2.7\"]"), func(c *Config) string {
		return cmp.Diff(4096, c.Control.ReplyCacheBytes) + cmp.Diff("kamailio", c.Control.SocketGroup) +
			cmp.Diff(prefixes("10.0.0.0/8", "192.0.2.7/32"), c.Control.Allow.NG, addrs) +
			cmp.Diff(defaultAllow, c.Control.Allow.RTPProxy, addrs)
	}},
	{"an empty http address disables the API", with("[control]\nhttp = \"\""), func(c *Config) string {
		return cmp.Diff("", c.Control.HTTP)
	}},
	{"a defined default switchboard is accepted", with("[control]\ndefault-switchboard = \"edge\""), func(c *Config) string {
		return cmp.Diff("edge", c.Control.DefaultSwitchboard)
	}},
}

func TestGoodConfigsParse(t *testing.T) {
	t.Parallel()
	for _, tc := range goodConfigs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := tc.check(c); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

var badConfigs = []struct{ name, toml, want string }{
	{"an unknown top-level key is named", "colour = \"red\"\n" + base, `unknown key "colour"`},
	{"an unknown table is named with its keys", with("[sip]\nport = 5060"), `unknown key "sip", "sip.port"`},
	{"an unknown switchboard key is named with its table", base + "colour = \"red\"\n", `unknown key "switchboard.colour"`},
	{"an unknown control key is named", with("[control]\nsip = \"x\""), `unknown key "control.sip"`},
	{"an unknown notify key is named", with("[notify]\nurl = \"x\""), `unknown key "notify.url"`},
	{"unknown keys of several owners are listed together in file order", "colour = 1\n" + with("[control]\nsip = 1\n[replication]\nredis-addr = \"x\"") + "size = 2\n",
		`unknown key "colour", "control.sip", "replication.redis-addr", "switchboard.size"`},
	{"a misspelt key is named before the setting it misses", strings.Replace(base, "state-dir", "state-dri", 1), `unknown key "state-dri"`},
	{"a misspelt key is named before another table's error", with("[control]\nng-allow = [\"x\"]\n[replication]\nredsi = \"r:1\""), `unknown key "replication.redsi"`},
	{"a bad allow entry is named", with("[control]\nng-allow = [\"10.0.0.0/33\"]"), `control: ng-allow: "10.0.0.0/33" is not a network or address`},
	{"a tiny reply cache", with("[control]\nreply-cache-bytes = 10"), `control: reply-cache-bytes 10: want at least 1024`},
	{"a control value of the wrong type names its line", with("[control]\nhttp = 7780"), `toml: line 3 (last key "control.http"): incompatible types: TOML value has type int64; destination has type string`},
	{"an unknown default switchboard", with("[control]\ndefault-switchboard = \"core\""), `control: default-switchboard "core" is not defined`},
	{"an unknown notify format is named", with("[notify]\nxmlrpc-format = \"sems\""), `notify: xmlrpc-format "sems": want "kamailio" or "teardown"`},
	{"a notify URL that is not http", with("[notify]\nxmlrpc-url = \"udp:127.0.0.1:8000\""), `notify: xmlrpc-url "udp:127.0.0.1:8000": not an http or https URL`},
	{"replication settings without redis", with("[replication]\nqueue = 5"), `replication: "redis" is required`},
	{"a replication timeout that is no duration names its line", with("[replication]\nredis = \"r:1\"\ntimeout = \"soon\""), `line 4: invalid duration "soon" (want "10s" or seconds)`},
	{"an engine error still reads as before", strings.Replace(base, `"192.0.2.1"`, `"192.0.2"`, 1), `switchboard "edge": gate-a: invalid address "192.0.2"`},
	{"a TOML syntax error reports its line", "state-dir = \"/x\"\n[control]\nhttp = \"a\" \"b\"\n",
		`line 3: expected a top-level item to end with a newline, comment, or EOF, but got '"' instead`},
}

func TestBadConfigsSayWhereAndWhat(t *testing.T) {
	t.Parallel()
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tc.toml))
			if err == nil {
				t.Fatalf("accepted, got %+v", c)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplicationConfig(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name, toml string
		want       replication.Config
		err        string
	}{
		{name: "role addresses default to the gate addresses", toml: "[replication]\nredis = \"10.9.0.1:6379\"",
			want: replication.Config{Redis: "10.9.0.1:6379", KeyPrefix: replication.DefaultKeyPrefix, Queue: replication.DefaultQueue,
				Timeout: time.Second, RoleAddresses: []netip.Addr{a("192.0.2.1"), a("10.0.0.1")}}},
		{name: "a UDP control socket's specific address is a role address too", toml: `[control]
ng = "192.0.2.5:2223"
rtpproxy = "udp:[2001:db8::5]:22223"
lrkproxy = "127.0.0.1:22333"
http = "192.0.2.6:7780"
[replication]
redis = "10.9.0.1:6379"`,
			want: replication.Config{Redis: "10.9.0.1:6379", KeyPrefix: replication.DefaultKeyPrefix, Queue: replication.DefaultQueue,
				Timeout: time.Second, RoleAddresses: []netip.Addr{a("192.0.2.1"), a("10.0.0.1"), a("192.0.2.5"), a("2001:db8::5")}}},
		{name: "every setting is read", toml: `[replication]
redis = "r:1"
key-prefix = "p:"
role-addresses = ["192.0.2.1"]
queue = 10
timeout = "250ms"`,
			want: replication.Config{Redis: "r:1", KeyPrefix: "p:", Queue: 10, Timeout: 250 * time.Millisecond,
				RoleAddresses: []netip.Addr{a("192.0.2.1")}}},
		{name: "a bad role address is named", toml: "[replication]\nredis = \"r:1\"\nrole-addresses = [\"vip\"]",
			err: `replication: role-addresses: invalid address "vip"`},
		{name: "an empty queue is refused", toml: "[replication]\nredis = \"r:1\"\nqueue = 0", err: "replication: queue 0: want at least 1"},
		{name: "a zero timeout is refused", toml: "[replication]\nredis = \"r:1\"\ntimeout = 0", err: "replication: timeout: want more than zero"},
		{name: "no role address at all is refused", toml: "[replication]\nredis = \"r:1\"\nrole-addresses = []", err: "replication: role-addresses: want at least one address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(with(tc.toml)))
			if tc.err != "" {
				if diff := cmp.Diff(tc.err, errString(err)); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, c.Replication, addrs); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.toml")
	if err := os.WriteFile(p, []byte(with("[control]\nng-allow = [\"x\"]")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if diff := cmp.Diff(`config "`+p+`": control: ng-allow: "x" is not a network or address`, errString(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	missing := filepath.Join(dir, "missing.toml")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("missing file: %v, want a config error wrapping ErrNotExist", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Every configuration in examples/ parses; demo.toml is among them when it
// exists. No example yet is not a failure.
func TestExamplesParse(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join("..", "..", "examples", "demo.toml")
	if _, err := os.Stat(demo); err == nil && !contains(files, demo) {
		t.Errorf("%s exists but the glob missed it: %v", demo, files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Switchboards) == 0 {
				t.Error("no switchboard")
			}
		})
	}
}

func contains[T comparable](l []T, x T) bool {
	for _, v := range l {
		if v == x {
			return true
		}
	}
	return false
}
