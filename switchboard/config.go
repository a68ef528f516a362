package switchboard

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/conffile"
)

// Config is the validated configuration of the session engine: the state
// directory and the switchboards. The daemon's other tables ([control],
// [notify], [replication]) share its file but belong to their own packages
// (internal/daemonconfig).
type Config struct {
	// StateDir holds the session journal.
	StateDir string
	// Switchboards in file order; names are unique.
	Switchboards []*Switchboard
}

// Timeouts are the per-switchboard session timers of iptrtpproxy.
type Timeouts struct {
	// LearningA and LearningB are how long after alloc, update or answer
	// each gate takes the first packet's source as its peer's real address.
	LearningA, LearningB time.Duration
	// AlwaysLearnA and AlwaysLearnB keep following the source (handover).
	AlwaysLearnA, AlwaysLearnB bool
	// Ringing is how long an unanswered session lives.
	Ringing time.Duration
	// Media is how long an answered session lives without any media flow
	// in the kernel (0: forever). Sessions with a peer on hold are spared.
	Media time.Duration
}

// Gate is one side of a switchboard: a relay address and a port range.
type Gate struct {
	Name  string
	Addr  netip.Addr
	Ports PortRange
	// Learn says whose packets the gate learns its peer from.
	Learn LearnMode
	// Advertise, when valid, is the address written into SDP and protocol
	// replies instead of Addr: the public side of a 1:1 NAT (a cloud
	// router) whose private side is Addr. The kernel uses Addr.
	Advertise netip.Addr
}

// Public returns the address peers are told to send to: Advertise, or
// Addr when there is none.
func (g Gate) Public() netip.Addr {
	if g.Advertise.IsValid() {
		return g.Advertise
	}
	return g.Addr
}

// holds reports whether ap is one of g's address:ports.
func (g Gate) holds(ap netip.AddrPort) bool {
	return ap.Addr() == g.Addr && ap.Port() >= g.Ports.First && ap.Port() <= g.Ports.Last
}

// Advertised returns what peers are told to send to for the gate
// address:port ap of sb (a session's GateA or GateB): the port of ap at
// its gate's Public address. ap itself when it is not one of sb's gates;
// sb may be nil.
func (sb *Switchboard) Advertised(ap netip.AddrPort) netip.AddrPort {
	switch {
	case sb == nil:
	case sb.A.holds(ap):
		return netip.AddrPortFrom(sb.A.Public(), ap.Port())
	case sb.B.holds(ap):
		return netip.AddrPortFrom(sb.B.Public(), ap.Port())
	}
	return ap
}

// LearnMode says which sources a gate may learn as its peer's address
// while its learning window is open (README: Security).
type LearnMode string

// Learning modes.
const (
	// LearnSignalled learns only a source whose IP is the side's signalled
	// address or the address its signalling came from (a NAT may change
	// the port); new flows from other sources are dropped. The default.
	LearnSignalled LearnMode = "signalled"
	// LearnAny learns the first source, whoever it is: a stranger who
	// sends first, while a call rings, takes the call's media (unsafe).
	LearnAny LearnMode = "any"
	// LearnOff never learns: the gate takes media only from the signalled
	// address and port (no NAT traversal).
	LearnOff LearnMode = "off"
)

// Switchboard joins gate-a and gate-b. Media entering one gate leaves at the
// other.
type Switchboard struct {
	Name     string
	A, B     Gate
	Timeouts Timeouts
	// MaxSessions caps the sessions held at once (0: only the port
	// ranges do).
	MaxSessions int
}

// PortRange is an inclusive range of UDP ports.
type PortRange struct{ First, Last uint16 }

// String formats r as "first-last".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Pairs is the number of even/odd (RTP/RTCP) port pairs in r.
func (r PortRange) Pairs() int {
	first := int(r.First) + int(r.First)%2
	if int(r.Last) < first+1 {
		return 0
	}
	return (int(r.Last) - first + 1) / 2
}

func (r PortRange) overlaps(o PortRange) bool { return r.First <= o.Last && o.First <= r.Last }

// The raw layer mirrors the engine's keys of the TOML file; validate turns
// it into Config.
type rawConfig struct {
	StateDir    string
	Defaults    rawTimeouts
	Switchboard []rawSwitchboard
}

type rawTimeouts struct {
	LearningA    *conffile.Duration `toml:"learning-timeout-a"`
	LearningB    *conffile.Duration `toml:"learning-timeout-b"`
	AlwaysLearnA *bool              `toml:"always-learn-a"`
	AlwaysLearnB *bool              `toml:"always-learn-b"`
	Ringing      *conffile.Duration `toml:"ringing-timeout"`
	Media        *conffile.Duration `toml:"media-timeout"`
	MaxSessions  *int               `toml:"max-sessions"`
}

type rawSwitchboard struct {
	Name string  `toml:"name"`
	A    rawGate `toml:"gate-a"`
	B    rawGate `toml:"gate-b"`
	rawTimeouts
}

type rawGate struct {
	Name      string `toml:"name"`
	Address   string `toml:"address"`
	Ports     string `toml:"ports"`
	Learn     string `toml:"learn"`
	Advertise string `toml:"advertise"`
}

// DefaultTimeouts apply where neither [defaults] nor a switchboard sets one.
var defaultTimeouts = Timeouts{LearningA: 10 * time.Second, LearningB: 10 * time.Second,
	Ringing: 90 * time.Second, Media: 60 * time.Second}

// LoadConfig reads and validates the TOML file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %q: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates a TOML document holding only the
// engine's keys (state-dir, [defaults], [[switchboard]]). Unknown keys,
// duplicate names and overlapping port ranges are errors.
func ParseConfig(b []byte) (*Config, error) {
	f, err := conffile.Parse(b)
	if err != nil {
		return nil, err
	}
	c, err := DecodeConfig(f)
	if uerr := f.Unknown(); uerr != nil {
		return nil, uerr
	}
	return c, err
}

// DecodeConfig decodes and validates the engine's keys of f: state-dir,
// [defaults] and [[switchboard]]. The caller reports f's unknown keys
// (conffile.File.Unknown) before an error of DecodeConfig, which may stem
// from a misspelt key.
func DecodeConfig(f *conffile.File) (*Config, error) {
	var raw rawConfig
	for _, d := range []struct {
		key string
		v   any
	}{{"state-dir", &raw.StateDir}, {"defaults", &raw.Defaults}, {"switchboard", &raw.Switchboard}} {
		if err := f.Decode(d.key, d.v); err != nil {
			return nil, err
		}
	}
	return raw.validate()
}

func (r rawConfig) validate() (*Config, error) {
	c := &Config{StateDir: r.StateDir}
	if c.StateDir == "" {
		return nil, errors.New(`"state-dir" is required`)
	}
	defaults := r.Defaults.over(defaultTimeouts)
	maxSessions, err := r.Defaults.maxSessions(0)
	if err != nil {
		return nil, fmt.Errorf("defaults: %w", err)
	}
	seen := map[string]bool{}
	for i, rs := range r.Switchboard {
		sb, err := rs.validate(defaults, maxSessions)
		if err != nil {
			if rs.Name == "" {
				return nil, fmt.Errorf("switchboard %d: %w", i+1, err)
			}
			return nil, fmt.Errorf("switchboard %q: %w", rs.Name, err)
		}
		if seen[sb.Name] {
			return nil, fmt.Errorf("switchboard %q: defined twice", sb.Name)
		}
		seen[sb.Name] = true
		c.Switchboards = append(c.Switchboards, sb)
	}
	if len(c.Switchboards) == 0 {
		return nil, errors.New("no [[switchboard]] defined")
	}
	if err := checkOverlaps(c.Switchboards); err != nil {
		return nil, err
	}
	return c, nil
}

// over returns base with r's settings applied on top.
func (r rawTimeouts) over(base Timeouts) Timeouts {
	t := base
	if r.LearningA != nil {
		t.LearningA = time.Duration(*r.LearningA)
	}
	if r.LearningB != nil {
		t.LearningB = time.Duration(*r.LearningB)
	}
	if r.AlwaysLearnA != nil {
		t.AlwaysLearnA = *r.AlwaysLearnA
	}
	if r.AlwaysLearnB != nil {
		t.AlwaysLearnB = *r.AlwaysLearnB
	}
	if r.Ringing != nil {
		t.Ringing = time.Duration(*r.Ringing)
	}
	if r.Media != nil {
		t.Media = time.Duration(*r.Media)
	}
	return t
}

// maxSessions is max-sessions, or def when unset.
func (r rawTimeouts) maxSessions(def int) (int, error) {
	if r.MaxSessions == nil {
		return def, nil
	}
	if *r.MaxSessions < 0 {
		return 0, fmt.Errorf("max-sessions %d: want 0 (no cap) or more", *r.MaxSessions)
	}
	return *r.MaxSessions, nil
}

func (r rawSwitchboard) validate(defaults Timeouts, maxSessions int) (*Switchboard, error) {
	if r.Name == "" {
		return nil, errors.New(`"name" is required`)
	}
	a, err := r.A.validate("gate-a")
	if err != nil {
		return nil, err
	}
	b, err := r.B.validate("gate-b")
	if err != nil {
		return nil, err
	}
	if a.Addr.Is4() != b.Addr.Is4() {
		return nil, fmt.Errorf("gate-a %s and gate-b %s: gates of one switchboard share an address family", a.Addr, b.Addr)
	}
	if a.Name != "" && a.Name == b.Name {
		return nil, fmt.Errorf("gate-a and gate-b are both named %q", a.Name)
	}
	max, err := r.maxSessions(maxSessions)
	if err != nil {
		return nil, err
	}
	sb := &Switchboard{Name: r.Name, A: a, B: b, Timeouts: r.rawTimeouts.over(defaults), MaxSessions: max}
	if sb.Timeouts.Ringing <= 0 {
		return nil, errors.New(`"ringing-timeout" must be above zero`)
	}
	return sb, nil
}

func (r rawGate) validate(which string) (Gate, error) {
	g := Gate{Name: r.Name}
	a, err := netip.ParseAddr(r.Address)
	if err != nil || a.Zone() != "" {
		return g, fmt.Errorf("%s: invalid address %q", which, r.Address)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return g, fmt.Errorf("%s: address %q cannot be a gate (unspecified or multicast)", which, r.Address)
	}
	g.Addr = a.Unmap()
	if g.Ports, err = parsePorts(r.Ports); err != nil {
		return g, fmt.Errorf("%s: ports %q: %w", which, r.Ports, err)
	}
	switch m := LearnMode(r.Learn); m {
	case "":
		g.Learn = LearnSignalled
	case LearnSignalled, LearnAny, LearnOff:
		g.Learn = m
	default:
		return g, fmt.Errorf("%s: learn %q: want %q, %q or %q", which, r.Learn, LearnSignalled, LearnAny, LearnOff)
	}
	if g.Advertise, err = r.advertise(which, g.Addr); err != nil {
		return g, err
	}
	return g, nil
}

// advertise validates the optional advertised address of a gate at addr.
func (r rawGate) advertise(which string, addr netip.Addr) (netip.Addr, error) {
	if r.Advertise == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(r.Advertise)
	switch {
	case err != nil || a.Zone() != "":
		return a, fmt.Errorf("%s: invalid advertise address %q", which, r.Advertise)
	case a.IsUnspecified() || a.IsMulticast():
		return a, fmt.Errorf("%s: advertise address %q cannot be a gate (unspecified or multicast)", which, r.Advertise)
	case a.Unmap().Is4() != addr.Is4():
		return a, fmt.Errorf("%s: advertise address %q and address %s differ in family", which, r.Advertise, addr)
	}
	return a.Unmap(), nil
}

func parsePorts(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		return PortRange{}, errors.New(`want "first-last"`)
	}
	first, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	last, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	switch {
	case err1 != nil || err2 != nil || first == 0 || last == 0:
		return PortRange{}, errors.New("ports are numbers from 1 to 65535")
	case first > last:
		return PortRange{}, errors.New("start above end")
	}
	r := PortRange{First: uint16(first), Last: uint16(last)}
	if r.Pairs() == 0 {
		return PortRange{}, errors.New("holds no even/odd port pair for RTP and RTCP")
	}
	return r, nil
}

// checkOverlaps rejects two gates on one address with overlapping ports.
func checkOverlaps(sbs []*Switchboard) error {
	type named struct {
		where string
		g     Gate
	}
	var gates []named
	for _, sb := range sbs {
		gates = append(gates,
			named{fmt.Sprintf("switchboard %q gate-a", sb.Name), sb.A},
			named{fmt.Sprintf("switchboard %q gate-b", sb.Name), sb.B})
	}
	for i, x := range gates {
		for _, y := range gates[:i] {
			if x.g.Addr == y.g.Addr && x.g.Ports.overlaps(y.g.Ports) {
				return fmt.Errorf("%s ports %q overlap %s ports %q on %s",
					x.where, x.g.Ports, y.where, y.g.Ports, x.g.Addr)
			}
		}
	}
	return nil
}

// Switchboard returns the switchboard called name, or nil.
func (c *Config) Switchboard(name string) *Switchboard {
	for _, sb := range c.Switchboards {
		if sb.Name == name {
			return sb
		}
	}
	return nil
}
