package switchboard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// documented uses every key of the engine's schema: [defaults] with
// durations both as strings and as integer seconds, overrides per
// switchboard, and an IPv6 switchboard whose gates share an address.
const documented = `
state-dir = "/var/lib/nftrtpproxy"

[defaults]
max-sessions = 5000
learning-timeout-a = "10s"
learning-timeout-b = 5
always-learn-a = false
always-learn-b = true
ringing-timeout = "1m30s"
media-timeout = 120

[[switchboard]]
name = "edge"
ringing-timeout = 60
learning-timeout-a = "2.5s"
max-sessions = 100
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-39999" }
gate-b = { name = "internal", address = "10.0.0.1",  ports = "30000-39999", learn = "any" }

[[switchboard]]
name = "v6"
always-learn-b = false
media-timeout = "0s"
gate-a = { address = "2001:db8::1", ports = "40000-40099" }
gate-b = { address = "2001:db8::1", ports = "40100-40199", learn = "off" }
`

func TestDocumentedSchemaParses(t *testing.T) {
	t.Parallel()
	got, err := ParseConfig([]byte(documented))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		StateDir: "/var/lib/nftrtpproxy",
		Switchboards: []*Switchboard{{
			Name: "edge",
			A:    Gate{Name: "external", Addr: mustAddr("192.0.2.1"), Ports: PortRange{30000, 39999}, Learn: LearnSignalled},
			B:    Gate{Name: "internal", Addr: mustAddr("10.0.0.1"), Ports: PortRange{30000, 39999}, Learn: LearnAny},
			Timeouts: Timeouts{LearningA: 2500 * time.Millisecond, LearningB: 5 * time.Second,
				AlwaysLearnB: true, Ringing: time.Minute, Media: 2 * time.Minute},
			MaxSessions: 100,
		}, {
			Name: "v6",
			A:    Gate{Addr: mustAddr("2001:db8::1"), Ports: PortRange{40000, 40099}, Learn: LearnSignalled},
			B:    Gate{Addr: mustAddr("2001:db8::1"), Ports: PortRange{40100, 40199}, Learn: LearnOff},
			Timeouts: Timeouts{LearningA: 10 * time.Second, LearningB: 5 * time.Second,
				Ringing: 90 * time.Second},
			MaxSessions: 5000,
		}},
	}
	if diff := cmp.Diff(want, got, addrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if sb := got.Switchboard("v6"); sb == nil || sb.Name != "v6" {
		t.Errorf("Switchboard(%q) = %v", "v6", sb)
	}
	if sb := got.Switchboard("core"); sb != nil {
		t.Errorf("Switchboard(%q) = %v, want nil", "core", sb)
	}
}

// base is the smallest valid configuration; cases edit it.
const base = `state-dir = "/var/lib/nftrtpproxy"
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30999" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30999" }
`

// edit returns base with each old string replaced once by the next one.
func edit(pairs ...string) string {
	s := base
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			panic("edit: " + pairs[i] + " is not in the base config")
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

const core = `[[switchboard]]
name = "core"
gate-a = { address = "192.0.2.1", ports = "%s" }
gate-b = { address = "10.0.0.2", ports = "30000-30999" }
`

func coreWith(ports string) string { return strings.Replace(core, "%s", ports, 1) }

var goodConfigs = []struct {
	name, toml string
	check      func(*Config) string // what to look at; "" when as expected
}{
	{"the smallest config gets the default timeouts and limits", base, func(c *Config) string {
		return cmp.Diff(defaultTimeouts, c.Switchboards[0].Timeouts) +
			cmp.Diff(0, c.Switchboards[0].MaxSessions)
	}},
	{"session limits are read", edit("[[switchboard]]", "[defaults]\nmax-sessions = 10\n[[switchboard]]") + coreWith("31000-31999") + "max-sessions = 0\n", func(c *Config) string {
		return cmp.Diff(10, c.Switchboards[0].MaxSessions) + cmp.Diff(0, c.Switchboards[1].MaxSessions)
	}},
	{"gates sharing an address with ranges apart are accepted", edit(`"10.0.0.1", ports = "30000-30999"`, `"192.0.2.1", ports = "31000-31999"`), nil},
	{"two switchboards on one address with adjacent ranges are accepted", base + coreWith("31000-31999"), func(c *Config) string {
		return cmp.Diff(2, len(c.Switchboards))
	}},
	{"an IPv6 switchboard is accepted", edit(`"192.0.2.1"`, `"2001:db8::1"`, `"10.0.0.1"`, `"2001:db8:1::1"`), func(c *Config) string {
		return cmp.Diff(mustAddr("2001:db8:1::1"), c.Switchboards[0].B.Addr, addrs)
	}},
	{"an IPv4-mapped gate address is read as IPv4", edit(`"192.0.2.1"`, `"::ffff:192.0.2.1"`), func(c *Config) string {
		return cmp.Diff(mustAddr("192.0.2.1"), c.Switchboards[0].A.Addr, addrs)
	}},
	{"a switchboard's timeout overrides the defaults table", edit("[[switchboard]]", "[defaults]\nringing-timeout = 30\nalways-learn-a = true\n[[switchboard]]") + "ringing-timeout = \"45s\"\n", func(c *Config) string {
		want := defaultTimeouts
		want.Ringing, want.AlwaysLearnA = 45*time.Second, true
		return cmp.Diff(want, c.Switchboards[0].Timeouts)
	}},
	{"an odd first port starts at the next even one", edit(`"30000-30999" }`+"\ngate-b", `"30001-30004" }`+"\ngate-b"), func(c *Config) string {
		return cmp.Diff(1, c.Switchboards[0].A.Ports.Pairs())
	}},
	{"ports may be spaced around the dash", edit(`"30000-30999" }`+"\ngate-b", `"30000 - 30999" }`+"\ngate-b"), nil},
}

func TestGoodConfigsParse(t *testing.T) {
	t.Parallel()
	for _, tc := range goodConfigs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				if diff := tc.check(c); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

var badConfigs = []struct{ name, toml, want string }{
	{"an unknown top-level key is named", "colour = \"red\"\n" + base, `unknown key "colour"`},
	{"an unknown switchboard key is named with its table", base + "colour = \"red\"\n", `unknown key "switchboard.colour"`},
	{"an unknown gate key is named with its path", edit(`"30000-30999" }`, `"30000-30999", mtu = 1500 }`), `unknown key "switchboard.gate-a.mtu"`},
	{"a negative max-sessions", base + "max-sessions = -1\n", `switchboard "edge": max-sessions -1: want 0 (no cap) or more`},
	{"the daemon's other tables are not the engine's", edit("[[switchboard]]", "[control]\nng = \"127.0.0.1:2223\"\n[[switchboard]]"), `unknown key "control", "control.ng"`},
	{"several unknown keys are listed together", "colour = 1\nsize = 2\n" + base, `unknown key "colour", "size"`},
	{"a missing state-dir", edit(`state-dir = "/var/lib/nftrtpproxy"`, ""), `"state-dir" is required`},
	{"no switchboard at all", `state-dir = "/x"`, `no [[switchboard]] defined`},
	{"a switchboard without a name", edit(`name = "edge"`, ""), `switchboard 1: "name" is required`},
	{"a duplicate switchboard name", base + strings.Replace(coreWith("31000-31999"), `"core"`, `"edge"`, 1), `switchboard "edge": defined twice`},
	{"an unknown learning mode", edit(`address = "10.0.0.1", `, `address = "10.0.0.1", learn = "first", `), `switchboard "edge": gate-b: learn "first": want "signalled", "any" or "off"`},
	{"an invalid address", edit(`"192.0.2.1"`, `"192.0.2"`), `switchboard "edge": gate-a: invalid address "192.0.2"`},
	{"a missing gate address", edit(`address = "10.0.0.1", `, ""), `switchboard "edge": gate-b: invalid address ""`},
	{"an address with a zone", edit(`"10.0.0.1"`, `"fe80::1%eth0"`), `switchboard "edge": gate-b: invalid address "fe80::1%eth0"`},
	{"an unspecified address", edit(`"192.0.2.1"`, `"0.0.0.0"`), `switchboard "edge": gate-a: address "0.0.0.0" cannot be a gate (unspecified or multicast)`},
	{"a multicast address", edit(`"10.0.0.1"`, `"224.0.0.1"`), `switchboard "edge": gate-b: address "224.0.0.1" cannot be a gate (unspecified or multicast)`},
	{"a port range whose start is above its end", edit(`"30000-30999" }`, `"31000-30000" }`), `switchboard "edge": gate-a: ports "31000-30000": start above end`},
	{"a range of one odd port holds no pair", edit(`"30000-30999" }`, `"30001-30001" }`), `switchboard "edge": gate-a: ports "30001-30001": holds no even/odd port pair for RTP and RTCP`},
	{"a range of one even port holds no pair", edit(`"30000-30999" }`+"\ngate-b", `"30000-30000" }`+"\ngate-b"), `switchboard "edge": gate-a: ports "30000-30000": holds no even/odd port pair for RTP and RTCP`},
	{"a range without a dash", edit(`"30000-30999" }`, `"30000" }`), `switchboard "edge": gate-a: ports "30000": want "first-last"`},
	{"a range with port zero", edit(`"30000-30999" }`, `"0-30999" }`), `switchboard "edge": gate-a: ports "0-30999": ports are numbers from 1 to 65535`},
	{"a range beyond 65535", edit(`"10.0.0.1", ports = "30000-30999"`, `"10.0.0.1", ports = "30000-70000"`), `switchboard "edge": gate-b: ports "30000-70000": ports are numbers from 1 to 65535`},
	{"ports given as a number", edit(`ports = "30000-30999" }`, `ports = 30000 }`), `toml: line 4 (last key "switchboard.gate-a.ports"): incompatible types: TOML value has type int64; destination has type string`},
	{"ranges overlapping on one address across switchboards", base + coreWith("30500-31499"),
		`switchboard "core" gate-a ports "30500-31499" overlap switchboard "edge" gate-a ports "30000-30999" on 192.0.2.1`},
	{"ranges overlapping on one address within a switchboard", edit(`"10.0.0.1"`, `"192.0.2.1"`),
		`switchboard "edge" gate-b ports "30000-30999" overlap switchboard "edge" gate-a ports "30000-30999" on 192.0.2.1`},
	{"ranges sharing only their last port overlap", base + coreWith("30999-31999"),
		`switchboard "core" gate-a ports "30999-31999" overlap switchboard "edge" gate-a ports "30000-30999" on 192.0.2.1`},
	{"gates of different families", edit(`"10.0.0.1"`, `"2001:db8::1"`),
		`switchboard "edge": gate-a 192.0.2.1 and gate-b 2001:db8::1: gates of one switchboard share an address family`},
	{"gates with one name", edit(`"internal"`, `"external"`), `switchboard "edge": gate-a and gate-b are both named "external"`},
	{"a duration that is no duration", base + "ringing-timeout = \"soon\"\n", `line 6: invalid duration "soon" (want "10s" or seconds)`},
	{"a duration with a unit but no number", base + "ringing-timeout = \"s\"\n", `line 6: invalid duration "s" (want "10s" or seconds)`},
	{"a fractional number of seconds", base + "ringing-timeout = 1.5\n", `line 6: invalid duration 1.5 (want "10s" or seconds)`},
	{"negative seconds in the defaults", edit("[[switchboard]]", "[defaults]\nlearning-timeout-a = -3\n[[switchboard]]"), `line 3: negative duration -3`},
	{"a negative duration string", base + "media-timeout = \"-1m\"\n", `line 6: negative duration "-1m"`},
	{"seconds beyond what a duration holds", base + "learning-timeout-b = 9223372037\n", `line 6: duration 9223372037 seconds is out of range`},
	{"a ringing timeout of zero", base + "ringing-timeout = 0\n", `switchboard "edge": "ringing-timeout" must be above zero`},
	{"a TOML syntax error reports its line", "state-dir = \"/x\"\n[defaults]\nringing-timeout = \"a\" \"b\"\n",
		`line 3: expected a top-level item to end with a newline, comment, or EOF, but got '"' instead`},
	{"an unquoted string reports its line", "state-dir = \"/x\"\n\n[[switchboard]]\nname = edge\n", `line 4: expected value but found "edge" instead`},
}

func TestBadConfigsSayWhereAndWhat(t *testing.T) {
	t.Parallel()
	for _, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(tc.toml))
			if err == nil {
				t.Fatalf("accepted, got %+v", c)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPortRangeCountsPairs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r    PortRange
		want int
	}{
		{PortRange{30000, 30001}, 1},
		{PortRange{30000, 30002}, 1},
		{PortRange{30001, 30004}, 1},
		{PortRange{30001, 30005}, 2},
		{PortRange{30001, 30002}, 0},
		{PortRange{65534, 65535}, 1},
		{PortRange{1, 65535}, 32767},
	} {
		if got := tc.r.Pairs(); got != tc.want {
			t.Errorf("%s: %d pairs, want %d", tc.r, got, tc.want)
		}
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "x.toml")
	if err := os.WriteFile(p, []byte("state-dir = \"/x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p)
	if diff := cmp.Diff(`config "`+p+`": no [[switchboard]] defined`, errString(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	missing := filepath.Join(dir, "missing.toml")
	if _, err := LoadConfig(missing); !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("missing file: %v, want a config error wrapping ErrNotExist", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func FuzzParseConfig(f *testing.F) {
	f.Add(documented)
	for _, tc := range goodConfigs {
		f.Add(tc.toml)
	}
	for _, tc := range badConfigs {
		f.Add(tc.toml)
	}
	if files, _ := filepath.Glob(filepath.Join("..", "examples", "*.toml")); len(files) > 0 {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(string(b))
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig([]byte(s))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error message")
			}
			return
		}
		if err := acceptable(c); err != "" {
			t.Fatalf("accepted %s in:\n%s", err, s)
		}
	})
}

// acceptable re-checks the promises of a parsed Config.
func acceptable(c *Config) string {
	if c.StateDir == "" || len(c.Switchboards) == 0 {
		return "no state-dir or no switchboard"
	}
	var gates []Gate
	for _, sb := range c.Switchboards {
		t := sb.Timeouts
		switch {
		case sb.A.Ports.Pairs() == 0 || sb.B.Ports.Pairs() == 0:
			return "a gate without a port pair"
		case sb.A.Addr.Is4() != sb.B.Addr.Is4() || sb.A.Addr.Is4In6() || sb.B.Addr.Is4In6():
			return "gates of two families"
		case t.LearningA < 0 || t.LearningB < 0 || t.Media < 0 || t.Ringing <= 0:
			return "a negative timeout"
		}
		gates = append(gates, sb.A, sb.B)
	}
	for i, x := range gates {
		for _, y := range gates[:i] {
			if x.Addr == y.Addr && x.Ports.overlaps(y.Ports) {
				return "overlapping gates"
			}
		}
	}
	return ""
}

func contains[T comparable](l []T, x T) bool {
	for _, v := range l {
		if v == x {
			return true
		}
	}
	return false
}
