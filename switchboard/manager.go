package switchboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Options tune a Manager. The zero value is usable.
type Options struct {
	// Logger receives decisions (alloc, learn, expire); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PickPort returns a number in [0, n) to choose among a gate's port
	// pairs; nil means crypto/rand, so that nobody can predict a call's
	// ports. Tests pass switchboardtest.InOrder.
	PickPort func(n int) int
	// Replica follows committed session changes (replica.go); nil: none.
	Replica Replica
	// Standby starts the Manager as a standby router's (replica.go).
	Standby bool
	// Observer hears of learning, refused sources and compactions (for
	// metrics); nil ignores them.
	Observer Observer
}

// Manager owns the sessions of every switchboard: their ports, timers,
// journal and kernel legs. Its methods are safe for concurrent use; they are
// serialised, each request's change whole or not at all, and concurrent
// requests share a kernel transaction and a journal write (commit.go).
type Manager struct {
	cfg *Config
	dp  relay.Dataplane
	log *slog.Logger
	now func() time.Time
	obs Observer

	mu        sync.Mutex
	boards    map[string]*board
	sessions  map[string]*entry
	byIndex   map[uint32]*entry
	nextIndex uint32
	j         *journal
	timers    timerQueue
	wake      chan struct{}
	// timersDue is when runTimers wakes up next unless woken (m.wake).
	timersDue time.Time
	events    events
	gen       genTracker // the kernel's generation after the last transaction
	replica   Replica
	standby   bool
	q         commitQueue // on mu
	// watching is set while the flow watch is subscribed and has read the
	// flows that exist (learn.go): then the flows known per leg are all
	// there are, and Show reads them by tuple (inspect.go).
	watching atomic.Bool
	// changes counts committed session changes (entry.changed).
	changes uint64
	// compaction is the journal's background compaction (compaction.go).
	compaction compactor
}

type board struct {
	sb   *Switchboard
	a, b *ports
}

// entry is a session and the legs the kernel holds for it. The legs are
// not stored: they are s.legs(switchboard, legsAt), a pure function of the
// session, its switchboard's timeouts and the time of the commit that
// installed them, and storing them would double a session's memory.
type entry struct {
	s         *Session
	legsAt    time.Time // when the legs were installed
	hasLegs   bool      // false until the first commit
	locks     uint8     // lockBits of the installed legs, for compaction
	lastMedia time.Time // when the media timeout last saw a flow
	// flows are the conntrack entries seen per leg (flows.go); legs whose
	// bit is set in unknownFlows may hold entries never seen.
	flows        *legFlows
	unknownFlows uint8
	// pending is set while a change of e is queued for a group commit.
	pending bool
	// changed is Manager.changes after e's last commit.
	changed uint64
}

// maxIndex keeps 4*index within relay.MaxMarkIndex.
const maxIndex = relay.MaxMarkIndex / legsPerSession

// NewManager returns a Manager for cfg over dp. Call Start before use.
func NewManager(cfg *Config, dp relay.Dataplane, opts Options) *Manager {
	m := &Manager{cfg: cfg, dp: dp, log: opts.Logger, now: opts.Now,
		boards: map[string]*board{}, sessions: map[string]*entry{}, byIndex: map[uint32]*entry{},
		nextIndex: 1, wake: make(chan struct{}, 1),
		replica: opts.Replica, standby: opts.Standby}
	m.q.cond.L = &m.mu
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.obs = opts.Observer; m.obs == nil {
		m.obs = nopObserver{}
	}
	for _, sb := range cfg.Switchboards {
		bd := &board{sb: sb, a: newPorts(sb.A.Ports), b: newPorts(sb.B.Ports)}
		bd.a.pick, bd.b.pick = opts.PickPort, opts.PickPort
		m.boards[sb.Name] = bd
	}
	return m
}

// AllocRequest asks for a session on a switchboard. A and B are the peers'
// signalled addresses; either may be empty (not known yet: its packets are
// dropped until an update names it or learning finds it).
type AllocRequest struct {
	Switchboard string            `json:"switchboard"`
	A           Endpoint          `json:"a"`
	B           Endpoint          `json:"b"`
	Ringing     bool              `json:"ringing,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// UpdateRequest changes a session's signalled peers (a re-INVITE). A nil
// side stays as it is; a changed side forgets what it learned and learns
// again.
type UpdateRequest struct {
	A      *Endpoint         `json:"a,omitempty"`
	B      *Endpoint         `json:"b,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Answer ends ringing in the same transaction, as AdjustTimeout to
	// active would (the SDP answer and the 200 OK usually come together).
	Answer bool `json:"answer,omitempty"`
}

// Alloc creates a session: a port pair on each gate and its four legs in the
// kernel, in one transaction.
func (m *Manager) Alloc(ctx context.Context, r AllocRequest) (*Session, error) {
	if err := m.lockRequest(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	c, err := m.prepareAlloc(r)
	if err != nil {
		return nil, err
	}
	if err := m.submit(ctx, newTxn(c)); err != nil {
		return nil, err
	}
	m.logAlloc(c.next, "session allocated")
	return c.next.clone(), nil
}

func (m *Manager) logAlloc(s *Session, msg string) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return // not even the arguments' boxing, on every request
	}
	m.log.Debug(msg, "session", s.ID, "switchboard", s.Switchboard,
		"gate_a", s.GateA, "gate_b", s.GateB, "state", s.State)
}

// prepareAlloc checks r and builds the change that creates its session,
// with ports taken from the gates (released if it is not committed).
func (m *Manager) prepareAlloc(r AllocRequest) (*change, error) {
	bd, err := m.allocBoard(r)
	if err != nil {
		return nil, err
	}
	s, err := m.newSession(bd, r)
	if err != nil {
		return nil, err
	}
	return m.newSessionChange(bd, s), nil
}

// allocBoard checks an alloc request and returns its switchboard.
func (m *Manager) allocBoard(r AllocRequest) (*board, error) {
	bd := m.boards[r.Switchboard]
	if bd == nil {
		return nil, fmt.Errorf("switchboard %q: %w", r.Switchboard, ErrUnknownSwitchboard)
	}
	if err := checkPeers(bd.sb, r.A, r.B); err != nil {
		return nil, err
	}
	if err := checkLabels(r.Labels); err != nil {
		return nil, err
	}
	if err := bd.checkCapacity(); err != nil {
		return nil, err
	}
	return bd, nil
}

// newSessionChange is the change that installs the new session s, whose
// ports on bd it releases if it is not committed.
func (m *Manager) newSessionChange(bd *board, s *Session) *change {
	c := m.putChange(&entry{s: s}, s, true)
	c.release = func() {
		bd.a.release(s.GateA.Port())
		bd.b.release(s.GateB.Port())
	}
	return c
}

func checkPeers(sb *Switchboard, a, b Endpoint) error {
	if err := checkFamily("a", a, sb.A.Addr); err != nil {
		return fmt.Errorf("switchboard %q: %w: %w", sb.Name, ErrInvalid, err)
	}
	if err := checkFamily("b", b, sb.B.Addr); err != nil {
		return fmt.Errorf("switchboard %q: %w: %w", sb.Name, ErrInvalid, err)
	}
	return nil
}

func (m *Manager) newSession(bd *board, r AllocRequest) (*Session, error) {
	pa, ok := bd.a.take()
	if !ok {
		return nil, fmt.Errorf("switchboard %q: gate-a %s ports %s: %w", bd.sb.Name, bd.sb.A.Addr, bd.sb.A.Ports, ErrPortsExhausted)
	}
	pb, ok := bd.b.take()
	if !ok {
		bd.a.release(pa)
		return nil, fmt.Errorf("switchboard %q: gate-b %s ports %s: %w", bd.sb.Name, bd.sb.B.Addr, bd.sb.B.Ports, ErrPortsExhausted)
	}
	idx, err := m.newIndex()
	if err != nil {
		bd.a.release(pa)
		bd.b.release(pb)
		return nil, err
	}
	now := m.now()
	s := &Session{ID: newID(), Switchboard: bd.sb.Name, Index: idx,
		GateA: netip.AddrPortFrom(bd.sb.A.Addr, pa), GateB: netip.AddrPortFrom(bd.sb.B.Addr, pb),
		A: Peer{Signalled: r.A}, B: Peer{Signalled: r.B}, State: Active,
		Created: now, Updated: now, Labels: r.Labels}
	if r.Ringing {
		s.State, s.Expires = Ringing, now.Add(bd.sb.Timeouts.Ringing)
	}
	openLearning(s, bd.sb.Timeouts, now, true, true)
	return s, nil
}

// openLearning opens the learning windows of the given sides. While ringing
// they stay open until the ringing deadline.
func openLearning(s *Session, t Timeouts, now time.Time, a, b bool) {
	if a {
		s.A.LearnUntil = now.Add(t.LearningA)
	}
	if b {
		s.B.LearnUntil = now.Add(t.LearningB)
	}
	if s.State == Ringing {
		if a {
			s.A.LearnUntil = s.Expires
		}
		if b {
			s.B.LearnUntil = s.Expires
		}
	}
}

func (m *Manager) newIndex() (uint32, error) {
	for range len(m.byIndex) + 1 {
		i := m.nextIndex
		m.nextIndex++
		if m.nextIndex > maxIndex {
			m.nextIndex = 1
		}
		if m.byIndex[i] == nil {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: all %d session marks in use", ErrPortsExhausted, maxIndex)
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// commit makes next the state of e: kernel first (one transaction), then the
// journal. If the journal fails the kernel is rolled back, so an error leaves
// both as they were. It commits at once, not in a group: for the Manager's
// own changes, made with m.mu held since before they were prepared.
func (m *Manager) commit(ctx context.Context, e *entry, next *Session, isNew bool) error {
	t := newTxn(m.putChange(e, next, isNew))
	m.commitGroup(ctx, []*txn{t})
	return t.err
}

// installedLegs returns the legs the kernel holds for e, and false when it
// holds none yet (no commit, or no session).
func (m *Manager) installedLegs(e *entry) ([legsPerSession]relay.Leg, bool) {
	if e == nil || !e.hasLegs {
		return [legsPerSession]relay.Leg{}, false
	}
	return e.s.legs(m.boards[e.s.Switchboard].sb, e.legsAt), true
}

// installed is installedLegs as a slice, nil when the kernel holds none.
func (m *Manager) installed(e *entry) []relay.Leg {
	l, ok := m.installedLegs(e)
	if !ok {
		return nil
	}
	return l[:]
}

// installedLeg is leg k of installedLegs, without a slice on the heap: the
// per-flow checks call it for every flow the kernel reports.
func (m *Manager) installedLeg(e *entry, k int) (relay.Leg, bool) {
	l, ok := m.installedLegs(e)
	return l[k], ok
}

func (m *Manager) compact() error {
	if err := m.j.compactTo(m.snapshot()); err != nil {
		return err
	}
	m.obs.Compacted()
	return nil
}

// snapshot is every session and its lock bits, for a compaction. Called
// with m.mu held.
func (m *Manager) snapshot() snapshot {
	snap := m.j.snapshot(len(m.sessions))
	for _, e := range m.sessions {
		snap.add(e.s, e.locks)
	}
	return snap
}

func (m *Manager) get(id string) (*entry, error) {
	e := m.sessions[id]
	if e == nil {
		return nil, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	return e, nil
}

// Update applies a re-INVITE: changed peers are re-pointed at once and the
// stale flows towards their old addresses are deleted.
func (m *Manager) Update(ctx context.Context, id string, r UpdateRequest) (*Session, error) {
	if err := m.lockRequest(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	e, err := m.getSettled(id)
	if err != nil {
		return nil, err
	}
	c, err := m.prepareUpdate(e, r)
	if err != nil {
		return nil, err
	}
	if err := m.submit(ctx, newTxn(c)); err != nil {
		return nil, err
	}
	m.logUpdate(c.next)
	return c.next.clone(), nil
}

func (m *Manager) logUpdate(s *Session) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	m.log.Debug("session updated", "session", s.ID, "a", s.A.Signalled.RTP, "b", s.B.Signalled.RTP)
}

// prepareUpdate checks r and builds the change that applies it to e.
func (m *Manager) prepareUpdate(e *entry, r UpdateRequest) (*change, error) {
	id := e.s.ID
	bd := m.boards[e.s.Switchboard]
	next := e.s.clone()
	var a, b Endpoint
	if r.A != nil {
		a = *r.A
	}
	if r.B != nil {
		b = *r.B
	}
	if err := checkPeers(bd.sb, a, b); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	now := m.now()
	movedA := repoint(&next.A, r.A)
	movedB := repoint(&next.B, r.B)
	changedA, changedB := movedA, movedB
	if r.Answer && next.State == Ringing {
		next.State, next.Expires = Active, time.Time{}
		changedA, changedB = true, true // the learning windows start at the answer
	}
	openLearning(next, bd.sb.Timeouts, now, changedA, changedB)
	for k, v := range r.Labels {
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		next.Labels[k] = v
	}
	if err := checkLabels(next.Labels); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	next.Updated = now
	c := m.putChange(e, next, false)
	c.relearn(movedA, movedB)
	return c, nil
}

// relearn puts back, unchanged, the learning legs of a re-pointed side
// that the change leaves alone (same gate, peer and learning sources), so
// that the kernel forgets what they learned (relay: a leg removed and
// added without a learned source clears it). Otherwise a source the
// kernel learned from the side's old address, whose event the Manager had
// not yet handled, would outlive the re-point: the kernel would keep
// sending the other side's media there, and the late event would teach it.
func (c *change) relearn(movedA, movedB bool) {
	if !movedA && !movedB {
		return
	}
	for k, l := range c.want {
		moved := movedB
		if k == legARTP || k == legARTCP {
			moved = movedA
		}
		if !moved || !l.Learn || k >= len(c.had) || c.had[k] != l {
			continue
		}
		c.batch.Remove = append(c.batch.Remove, c.had[k])
		c.batch.Add = append(c.batch.Add, l)
	}
}

// repoint applies a signalled endpoint to p and reports whether its
// addresses changed; then p forgets what it learned. A change of the hold
// flag, the signalling source or strictness alone keeps the learned
// addresses (and a learning gate takes the new sources at once).
func repoint(p *Peer, e *Endpoint) bool {
	if e == nil {
		return false
	}
	if e.RTP == p.Signalled.RTP && e.RTCP == p.Signalled.RTCP {
		p.Signalled.Hold, p.Signalled.Source, p.Signalled.Strict = e.Hold, e.Source, e.Strict
		return false
	}
	*p = Peer{Signalled: *e}
	return true
}

// AdjustTimeout switches a session between ringing and active. Answering
// (ringing → active) ends the ringing deadline and starts the learning
// windows; active → ringing starts a new ringing deadline.
func (m *Manager) AdjustTimeout(ctx context.Context, id string, to State) (*Session, error) {
	if err := m.lockRequest(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	e, err := m.getSettled(id)
	if err != nil {
		return nil, err
	}
	if to != Ringing && to != Active {
		return nil, fmt.Errorf("session %s: %w: timeout %q is neither %q nor %q", id, ErrInvalid, to, Ringing, Active)
	}
	bd := m.boards[e.s.Switchboard]
	next, now := e.s.clone(), m.now()
	next.State, next.Expires, next.Updated = to, time.Time{}, now
	if to == Ringing {
		next.Expires = now.Add(bd.sb.Timeouts.Ringing)
	}
	openLearning(next, bd.sb.Timeouts, now, true, true)
	if err := m.submit(ctx, newTxn(m.putChange(e, next, false))); err != nil {
		return nil, err
	}
	m.log.Info("session timeout adjusted", "session", id, "state", to)
	return next.clone(), nil
}

// Delete removes a session: its legs and every conntrack entry of them, so
// media stops at once in both directions.
func (m *Manager) Delete(ctx context.Context, id string) error {
	if err := m.lockRequest(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	e, err := m.getSettled(id)
	if err != nil {
		return err
	}
	return m.submit(ctx, newTxn(m.deleteChange(e, EndDeleted)))
}

// delete removes a session at once, not in a group (see commit).
func (m *Manager) delete(ctx context.Context, id string, why EndReason) error {
	e, err := m.get(id)
	if err != nil {
		return err
	}
	t := newTxn(m.deleteChange(e, why))
	m.commitGroup(ctx, []*txn{t})
	return t.err
}

// Get returns a copy of the session with id.
func (m *Manager) Get(id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.get(id)
	if err != nil {
		return nil, err
	}
	return e.s.clone(), nil
}

// List returns copies of every session, oldest first.
func (m *Manager) List() []*Session {
	m.mu.Lock()
	out := make([]*Session, 0, len(m.sessions))
	for _, e := range m.sessions {
		out = append(out, e.s.clone())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Index < out[j].Index
	})
	return out
}

// Switchboards returns the configured switchboards.
func (m *Manager) Switchboards() []*Switchboard { return m.cfg.Switchboards }

// Close closes the journal. Kernel state stays so media keeps flowing.
func (m *Manager) Close() error {
	m.stopCompaction()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.j == nil {
		return nil
	}
	return m.j.close()
}
