package calls

import (
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what calls needs from the session manager;
// *switchboard.Manager satisfies it.
type Sessions interface {
	Alloc(ctx context.Context, r switchboard.AllocRequest) (*switchboard.Session, error)
	AllocPorts(ctx context.Context, r switchboard.AllocRequest, portA, portB uint16) (*switchboard.Session, error)
	Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error)
	AdjustTimeout(ctx context.Context, id string, to switchboard.State) (*switchboard.Session, error)
	Get(id string) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Show(ctx context.Context, id string) (*switchboard.Details, error)
	List() []*switchboard.Session
}

var _ Sessions = (*switchboard.Manager)(nil)

// SDP allocates and updates sessions from SDP.
type SDP interface {
	Alloc(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
	Update(ctx context.Context, r sdprelay.Request) (*sdprelay.Result, error)
}

// Errors callers branch on.
var (
	// ErrUnknownCall: no call has the Call-ID (or no dialog or stream
	// matches the tags).
	ErrUnknownCall = errors.New("unknown call")
	// ErrNoRoute: the direction names no switchboard and none is the default.
	ErrNoRoute = errors.New("no switchboard for the direction")
)

// Protocol is the control protocol a call was made through. Each has its
// own Call-ID space: the same Call-ID signalled through two protocols is
// two calls.
type Protocol string

// Protocols.
const (
	NG         Protocol = "ng"
	RTPProxy   Protocol = "rtpproxy"
	LRKProxy   Protocol = "lrkproxy"
	MediaProxy Protocol = "mediaproxy"
)

// Calls is the call table of every protocol. It is safe for concurrent
// use.
//
// Locking: mu guards the table (calls, created) and every call's data.
// A request also holds its call's lock (lockCall) from start to end, and
// takes mu only to look its call up and to write it: every writer of a
// call's data holds both, so the holder of a call's lock reads it without
// mu, and the session engine's work (SDP, the kernel, the journal) runs
// without mu, in parallel with the requests of other calls. A request that
// must end another call (lrkproxy taking over an idle call's port pair)
// takes that call's lock only if it is free (allocPair).
type Calls struct {
	sessions Sessions
	sdp      SDP
	boards   []*switchboard.Switchboard // the default one first
	def      string
	now      func() time.Time

	mu      sync.Mutex
	calls   map[key]*call
	created map[Protocol]uint64 // streams created since the start

	// callLocks serialise the requests of one call: a call's is
	// callLocks[hash of its key]. Calls that share one wait for each
	// other, which costs only concurrency.
	callLocks [callLockStripes]sync.Mutex
	seed      maphash.Seed
}

// callLockStripes is how many call locks there are.
const callLockStripes = 64

// lockCall locks the call lock of k and returns its unlock.
func (c *Calls) lockCall(k key) func() {
	l := &c.callLocks[c.stripe(k)]
	l.Lock()
	return l.Unlock
}

// stripe is the index of k's call lock.
func (c *Calls) stripe(k key) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(string(k.proto))
	h.WriteByte(0)
	h.WriteString(k.id)
	return h.Sum64() % callLockStripes
}

// lookup returns the call k, nil if none.
func (c *Calls) lookup(k key) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[k]
}

// key names a call: its protocol and Call-ID.
type key struct {
	proto Protocol
	id    string
}

type call struct {
	key
	created time.Time
	dialogs []*dialog
}

// dialog is one party pair of a call: a forked branch (ng), a stream named
// by its creator's tag (rtpproxy), the call itself (lrkproxy) or the
// dialog of the caller's From tag (mediaproxy).
type dialog struct {
	branch      string
	switchboard string
	offerer     string           // the tag of the party whose offer created it
	offererSide switchboard.Side // the gate facing the offerer
	answerer    string           // the other party's tag, once known
	dialogID    string           // mediaproxy's dialog_id
	sessions    []string         // by media index; "" for a rejected or ended stream
	answered    bool
	lastSignal  time.Time
}

// New returns the call table over sessions and sdp, routing requests without
// a direction to the switchboard named def. Call Restore before use.
func New(sessions Sessions, sdp SDP, boards []*switchboard.Switchboard, def string) *Calls {
	ordered := make([]*switchboard.Switchboard, 0, len(boards))
	for _, sb := range boards {
		if sb.Name == def {
			ordered = append([]*switchboard.Switchboard{sb}, ordered...)
		} else {
			ordered = append(ordered, sb)
		}
	}
	return &Calls{sessions: sessions, sdp: sdp, boards: ordered, def: def, now: time.Now,
		calls: map[key]*call{}, created: map[Protocol]uint64{}, seed: maphash.MakeSeed()}
}

// board returns the switchboard named name, nil if none.
func (c *Calls) board(name string) *switchboard.Switchboard {
	for _, sb := range c.boards {
		if sb.Name == name {
			return sb
		}
	}
	return nil
}

// advertised is where peers are told to send to reach gate g of switchboard
// sb: the gate's advertised address if it has one.
func (c *Calls) advertised(sb string, g netip.AddrPort) netip.AddrPort {
	return c.board(sb).Advertised(g)
}

// live reports whether any stream of d has a session.
func (d *dialog) live() bool {
	for _, id := range d.sessions {
		if id != "" {
			return true
		}
	}
	return false
}

// streams counts the sessions of cl's dialogs other than except; a nil cl
// has none.
func (cl *call) streams(except *dialog) int {
	if cl == nil {
		return 0
	}
	n := 0
	for _, d := range cl.dialogs {
		for _, id := range d.sessions {
			if d != except && id != "" {
				n++
			}
		}
	}
	return n
}

// add records cl, new or not.
func (c *Calls) add(cl *call) { c.calls[cl.key] = cl }

// newCall returns the call k, made if new (not recorded until add).
func (c *Calls) callOf(k key) *call {
	if cl := c.calls[k]; cl != nil {
		return cl
	}
	return &call{key: k, created: c.now()}
}

// dropDead forgets the dialogs of cl without a session, and cl when none is
// left. Called with c.mu held.
func (c *Calls) dropDead(cl *call) {
	keep := cl.dialogs[:0]
	for _, d := range cl.dialogs {
		if d.live() {
			keep = append(keep, d)
		}
	}
	clear(cl.dialogs[len(keep):])
	cl.dialogs = keep
	if len(keep) == 0 && c.calls[cl.key] == cl {
		delete(c.calls, cl.key)
	}
}

// endDialog ends the sessions of d, for the holder of its call's lock; an
// ended one is not an error. The kernel work runs without c.mu, which it
// takes to clear each stream it ended (or found gone).
func (c *Calls) endDialog(ctx context.Context, d *dialog) error {
	var errs []error
	for i, id := range d.sessions {
		if id == "" {
			continue
		}
		if err := c.sessions.Delete(ctx, id); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		d.sessions[i] = ""
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// forgetDead is dropDead for the holder of cl's lock, which does not hold
// c.mu.
func (c *Calls) forgetDead(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropDead(cl)
}

// streamGone forgets stream i of d, a dialog of cl, whose session the
// engine ended (a timeout), and whatever of cl that leaves dead; for the
// holder of cl's lock.
func (c *Calls) streamGone(cl *call, d *dialog, i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d.sessions[i] = ""
	c.dropDead(cl)
}

// SessionEnded forgets the stream of an ended session, whatever ended it
// (a ringing or media timeout, another front end, a takeover), and its
// call when no stream is left: the call is gone from every protocol's view
// at once. Feed it every end (switchboard.Subscription's Each),
// subscribing before Restore so that no end falls between the two.
func (c *Calls) SessionEnded(e switchboard.Ended) {
	r, ok := readLabels(e.Session)
	if !ok {
		return
	}
	defer c.lockCall(r.key)()
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[r.key]
	if cl == nil {
		return
	}
	for _, d := range cl.dialogs {
		for i, id := range d.sessions {
			if id == e.Session.ID {
				d.sessions[i] = ""
			}
		}
	}
	c.dropDead(cl)
}

// Restore rebuilds the call table of every protocol from the labels of the
// existing sessions (after a restart), those of this version and those the
// front ends wrote before the call layer was one. Sessions no protocol
// created (the HTTP API's) are left alone.
func (c *Calls) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sessions.List() { // oldest first
		r, ok := readLabels(s)
		if !ok {
			continue
		}
		cl := c.calls[r.key]
		if cl == nil {
			cl = &call{key: r.key, created: s.Created}
			c.calls[r.key] = cl
		}
		d := cl.restoredDialog(r, s)
		for len(d.sessions) <= r.media {
			d.sessions = append(d.sessions, "")
		}
		d.sessions[r.media] = s.ID
		d.answered = d.answered || s.State == switchboard.Active
		if s.Updated.After(d.lastSignal) {
			d.lastSignal = s.Updated
		}
	}
}

// restoredDialog finds the dialog of s among those restored so far, or
// adds it: a stream's slot already taken means another dialog of the same
// parties (a stream allocated anew after its first session ended).
func (cl *call) restoredDialog(r labels, s *switchboard.Session) *dialog {
	for _, d := range cl.dialogs {
		if d.branch == r.branch && d.offerer == r.offerer && d.switchboard == s.Switchboard &&
			(r.media >= len(d.sessions) || d.sessions[r.media] == "") {
			if d.answerer == "" {
				d.answerer = r.answerer
			}
			return d
		}
	}
	d := &dialog{branch: r.branch, switchboard: s.Switchboard, offerer: r.offerer, offererSide: r.side,
		answerer: r.answerer, dialogID: r.dialogID}
	cl.dialogs = append(cl.dialogs, d)
	return d
}

// ListOf returns the Call-IDs of protocol p, oldest first, at most limit
// (0: all).
func (c *Calls) ListOf(p Protocol, limit int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []*call
	for k, cl := range c.calls {
		if k.proto == p {
			all = append(all, cl)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].created.Before(all[j].created) })
	var ids []string
	for _, cl := range all {
		if limit > 0 && len(ids) == limit {
			break
		}
		ids = append(ids, cl.id)
	}
	return ids
}

// CountOf returns the number of calls of protocol p and of their sessions.
func (c *Calls) CountOf(p Protocol) (calls, sessions int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cl := range c.calls {
		if k.proto != p {
			continue
		}
		calls++
		sessions += cl.streams(nil)
	}
	return calls, sessions
}

// Created returns how many streams protocol p created since the start.
func (c *Calls) Created(p Protocol) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created[p]
}
