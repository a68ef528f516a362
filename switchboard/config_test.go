package switchboard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const documented = `
state-dir = "/var/lib/nftrtpproxy"
[control]
http = "127.0.0.1:7780"
ng = "127.0.0.1:2223"
default-switchboard = "edge"
[defaults]
learning-timeout-a = "10s"
learning-timeout-b = 5
always-learn-a = false
always-learn-b = true
ringing-timeout = "90s"
[[switchboard]]
name = "edge"
ringing-timeout = "60s"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-39999" }
gate-b = { name = "internal", address = "10.0.0.1",  ports = "30000-39999" }
[[switchboard]]
name = "v6"
always-learn-b = false
gate-a = { address = "2001:db8::1", ports = "40000-40099" }
gate-b = { address = "2001:db8::1", ports = "40100-40199" }
`

func TestDocumentedSchemaParses(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(documented))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		StateDir: "/var/lib/nftrtpproxy",
		Control:  Control{HTTP: "127.0.0.1:7780", NG: "127.0.0.1:2223", DefaultSwitchboard: "edge"},
		Switchboards: []*Switchboard{
			{Name: "edge",
				A:        Gate{Name: "external", Addr: mustAddr("192.0.2.1"), Ports: PortRange{30000, 39999}},
				B:        Gate{Name: "internal", Addr: mustAddr("10.0.0.1"), Ports: PortRange{30000, 39999}},
				Timeouts: Timeouts{LearningA: 10 * time.Second, LearningB: 5 * time.Second, AlwaysLearnB: true, Ringing: 60 * time.Second, Media: time.Minute}},
			{Name: "v6",
				A:        Gate{Addr: mustAddr("2001:db8::1"), Ports: PortRange{40000, 40099}},
				B:        Gate{Addr: mustAddr("2001:db8::1"), Ports: PortRange{40100, 40199}},
				Timeouts: Timeouts{LearningA: 10 * time.Second, LearningB: 5 * time.Second, Ringing: 90 * time.Second, Media: time.Minute}},
		},
	}
	if diff := cmp.Diff(want, c, cmp.Comparer(func(a, b Gate) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHTTPDefaultsToLoopback(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(minimal("")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Control.HTTP != "127.0.0.1:7780" {
		t.Errorf("http = %q, want 127.0.0.1:7780", c.Control.HTTP)
	}
}

func minimal(extra string) string {
	return `state-dir = "/tmp/x"
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30999" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30999" }
` + extra
}

func TestBadConfigsSayWhereAndWhat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"an unknown key", minimal("colour = \"red\"\n"), `unknown key "switchboard.colour"`},
		{"a missing state-dir", strings.Replace(minimal(""), `state-dir = "/tmp/x"`, "", 1), `"state-dir" is required`},
		{"no switchboard", `state-dir = "/x"`, `no [[switchboard]] defined`},
		{"a duplicate switchboard", minimal("") + strings.SplitN(minimal(""), "\n", 2)[1], `switchboard "edge": defined twice`},
		{"an invalid address", strings.Replace(minimal(""), `"192.0.2.1"`, `"192.0.2"`, 1), `switchboard "edge": gate-a: invalid address "192.0.2"`},
		{"a port range backwards", strings.Replace(minimal(""), `ports = "30000-30999" }
gate-b`, `ports = "31000-30000" }
gate-b`, 1), `switchboard "edge": gate-a: ports "31000-30000": start above end`},
		{"a range without a pair", strings.Replace(minimal(""), `"30000-30999" }
gate-b`, `"30001-30001" }
gate-b`, 1), `switchboard "edge": gate-a: ports "30001-30001": holds no even/odd port pair for RTP and RTCP`},
		{"a range without a dash", strings.Replace(minimal(""), `"30000-30999" }
gate-b`, `"30000" }
gate-b`, 1), `gate-a: ports "30000": want "first-last"`},
		{"overlapping ranges on one address", strings.Replace(minimal(""), `"10.0.0.1"`, `"192.0.2.1"`, 1),
			`switchboard "edge" gate-b ports "30000-30999" overlap switchboard "edge" gate-a ports "30000-30999" on 192.0.2.1`},
		{"gates of two families", strings.Replace(minimal(""), `"10.0.0.1"`, `"2001:db8::1"`, 1), `gates of one switchboard share an address family`},
		{"an unknown default switchboard", strings.Replace(minimal(""), "[[switchboard]]", "[control]\ndefault-switchboard = \"core\"\n[[switchboard]]", 1), `control: default-switchboard "core" is not defined`},
		{"a bad duration", minimal(`ringing-timeout = "soon"` + "\n"), `invalid duration "soon"`},
		{"a TOML syntax error", "state-dir = \n", "line 1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(tc.toml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestGatesMayShareAnAddressWithoutOverlap(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(minimal(""), `address = "10.0.0.1", ports = "30000-30999"`, `address = "192.0.2.1", ports = "31000-31999"`, 1)
	if _, err := ParseConfig([]byte(cfg)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "x.toml")
	if err := os.WriteFile(p, []byte("state-dir = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p)
	if err == nil || !strings.HasPrefix(err.Error(), `config "`+p+`": `) {
		t.Fatalf("error %v, want it to start with the file name", err)
	}
}

// Every configuration in examples/ parses.
func TestExamplesParse(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../examples/*.toml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		if _, err := LoadConfig(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(documented)
	f.Add(minimal(""))
	f.Add("state-dir = \n")
	f.Add(strings.Replace(minimal(""), `"10.0.0.1"`, `"192.0.2.1"`, 1))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig([]byte(s))
		if err != nil {
			return
		}
		for _, sb := range c.Switchboards {
			if sb.A.Ports.Pairs() == 0 || sb.B.Ports.Pairs() == 0 || sb.A.Addr.Is4() != sb.B.Addr.Is4() {
				t.Fatalf("accepted an invalid switchboard %+v", sb)
			}
		}
	})
}
