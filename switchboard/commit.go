package switchboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Group commit. Concurrent requests share one nftables transaction and one
// journal write, as a database's transactions share an fsync: a request
// prepares its change under m.mu and queues it; the first one queued leads.
// The leader lets go of m.mu for a moment so that requests waiting for it
// can prepare and queue too (gather), then, holding m.mu again, commits the
// whole queue: the kernel first, in one transaction, then the journal, in
// one write, and only then answers every member. Holding m.mu through the
// commit keeps the in-memory state and the kernel's in step for everything
// else that reads them (new-flow events, the media check).
//
// A member is one request's txn: the changes of all the sessions it
// touches (Manager.Change), which share the group's transaction and are
// journaled as one record. Each member stays all or nothing: a transaction
// the kernel refuses changed nothing, and its members are committed again
// one by one, so that only the one the kernel refuses fails. A failed
// journal write rolls back the kernel for every member that installs legs,
// as it would alone.
//
// While a change is queued its entry is pending: a request for the same
// session waits until it is committed (getSettled), and the Manager's own
// work (timers, learning, the media check) waits for the whole group
// (lockSettled), so no change is prepared from a state a queued one is
// about to replace.

// maxGroup bounds the requests one transaction carries.
const maxGroup = 64

// maxGatherRounds bounds how often a leader lets go of m.mu to gather.
const maxGatherRounds = 8

// commitQueue holds the changes waiting for a group commit. Guarded by
// Manager.mu; cond waits on it.
type commitQueue struct {
	cond    sync.Cond
	waiting []*txn
	leading bool
	// arriving counts requests waiting for Manager.mu (lockRequest).
	arriving atomic.Int32
	// gathered, when set (tests), runs in every gathering pause, with
	// Manager.mu released.
	gathered func()
}

// change is one request's part of a group commit: a session's next state
// (nil next: the session goes), the batch that takes the kernel there and
// what the journal records of it.
type change struct {
	e         *entry
	next      *Session // nil: delete e's session
	isNew     bool
	why       EndReason // a delete's
	had, want []relay.Leg
	at        time.Time // when want was computed: the legs' time
	batch     relay.Batch
	stale     []uint32
	// release undoes what preparing the change claimed (a new session's
	// ports), if it is not committed; nil: nothing.
	release func()
}

// txn is one request's changes, committed together or not at all: in one
// kernel transaction and one journal record.
type txn struct {
	changes []*change
	done    bool
	err     error
}

func newTxn(cs ...*change) *txn { return &txn{changes: cs} }

// ids names t's sessions for errors.
func (t *txn) ids() string {
	if len(t.changes) == 1 {
		return t.changes[0].id()
	}
	ids := make([]string, len(t.changes))
	for i, c := range t.changes {
		ids[i] = c.id()
	}
	return strings.Join(ids, ", ")
}

// fail records err as t's outcome and releases what its changes claimed.
func (t *txn) fail(err error) {
	t.err = err
	for _, c := range t.changes {
		if c.release != nil {
			c.release()
		}
	}
}

// putChange makes next the state of e.
func (m *Manager) putChange(e *entry, next *Session, isNew bool) *change {
	now := m.now()
	l := next.legs(m.boards[next.Switchboard].sb, now)
	c := &change{e: e, next: next, isNew: isNew, at: now, want: l[:], had: m.installed(e)}
	c.batch = diffLegs(c.had, c.want)
	return c
}

// deleteChange removes e's session and legs.
func (m *Manager) deleteChange(e *entry, why EndReason) *change {
	c := &change{e: e, why: why, had: m.installed(e)}
	c.batch = relay.Batch{Remove: c.had}
	return c
}

func (c *change) id() string { return c.e.s.ID }

// submit queues t and returns once it is committed or has failed: as the
// leader of its group or as a member. On failure, what t's changes claimed
// is released. Called with m.mu held; returns with it held, though it was
// let go meanwhile.
func (m *Manager) submit(ctx context.Context, t *txn) error {
	q := &m.q
	for _, c := range t.changes {
		c.e.pending = true
	}
	q.waiting = append(q.waiting, t)
	if q.leading {
		for !t.done {
			q.cond.Wait()
		}
		return t.err
	}
	q.leading = true
	m.gather()
	for len(q.waiting) > 0 {
		n := min(len(q.waiting), maxGroup)
		group := q.waiting[:n:n]
		q.waiting = q.waiting[n:]
		m.commitGroup(context.WithoutCancel(ctx), group)
	}
	q.waiting = nil
	q.leading = false
	q.cond.Broadcast()
	return t.err
}

// gather lets go of m.mu while requests are arriving (waiting for m.mu to
// prepare and queue their changes), until the group is full. A lone
// request does not pause at all.
func (m *Manager) gather() {
	q := &m.q
	for range maxGatherRounds {
		if q.arriving.Load() == 0 || len(q.waiting) >= maxGroup {
			return
		}
		m.mu.Unlock()
		if q.gathered != nil {
			q.gathered()
		}
		runtime.Gosched()
		m.mu.Lock()
	}
}

// lockRequest locks m.mu for a request, counted as arriving meanwhile so
// that a leader gathering a group waits for it. A standby refuses every
// request here (ErrStandby), with m.mu let go again.
func (m *Manager) lockRequest() error {
	m.q.arriving.Add(1)
	m.mu.Lock()
	m.q.arriving.Add(-1)
	if err := m.writable(); err != nil {
		m.mu.Unlock()
		return err
	}
	return nil
}

// lockSettled locks m.mu once no group is being gathered or committed:
// then no entry is pending.
func (m *Manager) lockSettled() {
	m.mu.Lock()
	for m.q.leading {
		m.q.cond.Wait()
	}
}

// getSettled is get once the session's queued change, if any, is committed.
func (m *Manager) getSettled(id string) (*entry, error) {
	for {
		e, err := m.get(id)
		if err != nil || !e.pending {
			return e, err
		}
		m.q.cond.Wait()
	}
}

// commitGroup commits group: its legs in one transaction, its records in
// one journal write; then each member's state is the Manager's. A
// transaction the kernel refuses is tried again member by member.
func (m *Manager) commitGroup(ctx context.Context, group []*txn) {
	if err := m.applyGroup(ctx, group); err != nil {
		if len(group) == 1 {
			group[0].fail(fmt.Errorf("session %s: %w", group[0].ids(), err))
			group[0].settle()
			return
		}
		for _, t := range group {
			m.commitGroup(ctx, []*txn{t})
		}
		return
	}
	m.journalGroup(ctx, group)
	for _, t := range group {
		if t.err == nil {
			for _, c := range t.changes {
				m.finish(c)
			}
		}
		t.settle()
	}
	if m.j.needsCompaction() {
		m.startCompaction() // compaction.go
	}
}

func (t *txn) settle() {
	t.done = true
	for _, c := range t.changes {
		c.e.pending = false
	}
}

// groupChanges lists the changes of every member of group.
func groupChanges(group []*txn) []*change {
	if len(group) == 1 {
		return group[0].changes
	}
	var out []*change
	for _, t := range group {
		out = append(out, t.changes...)
	}
	return out
}

// applyGroup commits the legs of every member in one transaction, deleting
// their stale flows by tuple where they are known (flows.go). If the
// transaction was committed but stale flows could not all be deleted
// (relay.ErrFlowsRemain), the change stands: the error is logged and the
// flows of every member's stale legs count as unknown, so that their next
// change flushes them by mark.
func (m *Manager) applyGroup(ctx context.Context, group []*txn) error {
	var b relay.Batch
	all := groupChanges(group)
	for _, c := range all {
		c.stale = c.batch.Stale()
		mb := c.batch
		mb.Delete = nil
		c.e.withFlows(&mb, c.stale)
		if len(all) == 1 {
			b = mb
			break
		}
		b.Remove = append(b.Remove, mb.Remove...)
		b.Add = append(b.Add, mb.Add...)
		b.Flush = append(b.Flush, mb.Flush...)
		b.Delete = append(b.Delete, mb.Delete...)
	}
	err := m.apply(ctx, b)
	if err != nil && !errors.Is(err, relay.ErrFlowsRemain) {
		return err
	}
	for _, c := range all {
		c.e.setFlows(c.stale, err != nil)
	}
	if err != nil {
		m.log.Error("legs changed, but their stale flows were not all deleted", "sessions", len(all),
			"mark", fmt.Sprintf("%#x", relay.Mark(4*all[0].e.s.Index)), "err", err)
	}
	return nil
}

// journalGroup records every member in one write (journal.writeRecords),
// each member as one record (txn.record). If that fails, every member
// fails and the kernel is rolled back for all of them: a delete too is all
// or nothing, and one answered as done must not return after a restart.
func (m *Manager) journalGroup(ctx context.Context, group []*txn) {
	recs := make([]record, len(group))
	for i, t := range group {
		recs[i] = t.record()
	}
	err := m.j.writeRecords(recs...)
	if err == nil {
		for _, t := range group {
			for _, c := range t.changes {
				m.j.count(c)
				m.publish(c.record())
			}
		}
		return
	}
	var undo relay.Batch
	for _, c := range groupChanges(group) {
		u := diffLegs(c.want, c.had)
		undo.Remove, undo.Add = append(undo.Remove, u.Remove...), append(undo.Add, u.Add...)
	}
	if uerr := m.apply(ctx, undo.FlushStale()); uerr != nil {
		err = errors.Join(err, fmt.Errorf("roll back kernel: %w", uerr))
	}
	for _, t := range group {
		if len(t.changes) == 1 && t.changes[0].next == nil {
			t.fail(fmt.Errorf("session %s: not deleted: %w", t.ids(), err))
		} else {
			t.fail(fmt.Errorf("session %s: %w", t.ids(), err))
		}
	}
}

// record is what the journal records of t: its one change's record, or a
// "txn" record holding every change's, which a load applies whole or not
// at all.
func (t *txn) record() record {
	if len(t.changes) == 1 {
		return t.changes[0].record()
	}
	recs := make([]record, len(t.changes))
	for i, c := range t.changes {
		recs[i] = c.record()
	}
	return record{Op: "txn", Txn: recs}
}

// record is what the journal records of c.
func (c *change) record() record {
	if c.next == nil {
		return record{Op: "del", ID: c.id()}
	}
	return record{Op: "put", Session: c.next, Locks: lockBits(c.want)}
}

// count counts c's record, once written, as put and del do.
func (j *journal) count(c *change) {
	switch {
	case c.next == nil:
		j.live--
		j.dead += 2
	case c.isNew:
		j.live++
	default:
		j.dead++
	}
}

// logEnd logs the end of s: at debug level when a request deleted it
// (the call's end line, metrics.EndLog, says it once per call), else at
// info level (timeouts, restores, takeovers are news).
func (m *Manager) logEnd(s *Session, why EndReason) {
	level := slog.LevelInfo
	if why == EndDeleted {
		level = slog.LevelDebug
	}
	if !m.log.Enabled(context.Background(), level) {
		return
	}
	m.log.Log(context.Background(), level, "session "+why.logText(), "session", s.ID, "switchboard", s.Switchboard)
}

// finish makes a committed change the Manager's state.
func (m *Manager) finish(c *change) {
	e := c.e
	if c.next == nil {
		s := e.s
		delete(m.sessions, s.ID)
		delete(m.byIndex, s.Index)
		bd := m.boards[s.Switchboard]
		bd.a.release(s.GateA.Port())
		bd.b.release(s.GateB.Port())
		m.logEnd(s, c.why)
		m.publishEnd(s, c.why)
		return
	}
	m.changes++
	e.s, e.legsAt, e.hasLegs, e.changed = c.next, c.at, true, m.changes
	e.locks = lockBits(c.want)
	m.sessions[c.next.ID], m.byIndex[c.next.Index] = e, e
	m.schedule(c.next)
}
