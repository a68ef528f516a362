package switchboard

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Replica follows the session changes a Manager commits, for a standby
// router to apply (package replication carries them over Redis).
//
// Committed is called for every put and delete the Manager commits while it
// is active, in commit order, with the record the journal holds for it,
// encoded as JSON: whatever a session record carries (learned sources,
// labels, counters, and fields added later) travels with it. The Manager
// holds its lock during the call, so Committed must not block and must not
// call back into the Manager. A nil Replica (the default) follows nothing.
type Replica interface {
	Committed(id string, rec []byte)
}

// ErrStandby: the Manager is a standby router's and takes changes only from
// the active router.
var ErrStandby = errors.New("standby router: the active router serves requests")

// Standby reports whether m is a standby router's Manager.
func (m *Manager) Standby() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.standby
}

// writable returns ErrStandby on a standby. Called with m.mu held.
func (m *Manager) writable() error {
	if m.standby {
		return ErrStandby
	}
	return nil
}

// publish hands rec to the Replica, if m is active and has one. Called with
// m.mu held, after the record's commit.
func (m *Manager) publish(rec record) {
	if m.replica == nil || m.standby {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		m.log.Error("encoding a session change for the standby failed", "session", rec.ID, "err", err)
		return
	}
	id := rec.ID
	if rec.Session != nil {
		id = rec.Session.ID
	}
	m.replica.Committed(id, b)
}

// Promote makes a standby's Manager active (takeover): from here it serves
// requests, its timers fire (ringing deadlines and learning windows as the
// old active set them), and its media timeouts count from now, since the
// flows of the old router were never seen here. Promoting an active Manager
// changes nothing.
func (m *Manager) Promote() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.standby {
		return
	}
	m.standby = false
	now := m.now()
	for id, e := range m.sessions {
		e.lastMedia = now
		// Deadlines that passed while standby (the active died before its
		// timer fired) are due at once; schedule skips them.
		heap.Push(&m.timers, timer{at: now, id: id})
		m.schedule(e.s)
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	m.log.Info("promoted to active", "sessions", len(m.sessions))
}

// Demote makes m a standby's Manager: requests are refused with
// ErrStandby and no timer fires; sessions change only through
// ApplyReplica and ReplaceReplica. Stop Run before demoting.
func (m *Manager) Demote() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.standby {
		return
	}
	m.standby = true
	m.timers = nil
	m.log.Info("demoted to standby", "sessions", len(m.sessions))
}

// Snapshot calls fn, with m's lock held, with the journal record of every
// session by id. Committed is not called while fn runs, so a Replica that
// takes a snapshot and drops the changes it had queued loses nothing.
func (m *Manager) Snapshot(fn func(recs map[string][]byte)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs := make(map[string][]byte, len(m.sessions))
	for id, e := range m.sessions {
		b, err := json.Marshal(record{Op: "put", Session: e.s, Locks: lockBits(m.installed(e))})
		if err != nil {
			return fmt.Errorf("snapshot: session %s: %w", id, err)
		}
		recs[id] = b
	}
	fn(recs)
	return nil
}

// ApplyReplica applies one record the active router committed (as handed to
// its Replica) to a standby: the session is installed in the kernel and
// the journal as it is on the active router, or deleted. Deleting a
// session the standby lacks is no error. The standby computes the legs'
// locks from the session and its own clock, as the active did at the
// commit (learned sources lock at once; a closed learning window locks the
// signalled address): with the two clocks in step they agree, and the
// active's commit when a window closes brings the lock along.
func (m *Manager) ApplyReplica(ctx context.Context, rec []byte) error {
	var r record
	if err := json.Unmarshal(rec, &r); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.standby {
		return errors.New("replica: the active router takes no changes from elsewhere")
	}
	return m.applyRecord(ctx, r)
}

// ReplaceReplica makes a standby's sessions those of recs (a snapshot of
// the active router's): sessions not in recs are deleted, the others put.
func (m *Manager) ReplaceReplica(ctx context.Context, recs [][]byte) error {
	want := make([]record, 0, len(recs))
	keep := make(map[string]bool, len(recs))
	for i, b := range recs {
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.Op != "put" || r.Session == nil {
			return fmt.Errorf("replica: snapshot record %d: not a session: %q", i+1, b)
		}
		want = append(want, r)
		keep[r.Session.ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.standby {
		return errors.New("replica: the active router takes no snapshot from elsewhere")
	}
	var errs []error
	for id := range m.sessions {
		if !keep[id] {
			errs = append(errs, m.delete(ctx, id, EndGone))
		}
	}
	for _, r := range want {
		errs = append(errs, m.applyRecord(ctx, r))
	}
	return errors.Join(errs...)
}

func (m *Manager) applyRecord(ctx context.Context, r record) error {
	switch {
	case r.Op == "del" && r.ID != "":
		if m.sessions[r.ID] == nil {
			return nil
		}
		return m.delete(ctx, r.ID, EndDeleted)
	case r.Op == "put" && r.Session != nil && r.Session.ID != "":
		return m.applyPut(ctx, r.Session)
	}
	return fmt.Errorf("replica: invalid record %q", r.Op)
}

// applyPut installs s, first deleting a local session that s replaces
// with other ports or index, or whose ports or index s takes.
func (m *Manager) applyPut(ctx context.Context, s *Session) error {
	if e := m.sessions[s.ID]; e != nil {
		if samePlace(e.s, s) {
			return m.commit(ctx, e, s, false)
		}
		if err := m.delete(ctx, s.ID, EndGone); err != nil {
			return err
		}
	}
	if err := m.claim(s); err != nil {
		if err := m.evict(ctx, s); err != nil {
			return err
		}
		if err := m.claim(s); err != nil {
			return fmt.Errorf("replica: session %s: %w", s.ID, err)
		}
	}
	e := &entry{s: s}
	if err := m.commit(ctx, e, s, true); err != nil {
		bd := m.boards[s.Switchboard]
		bd.a.release(s.GateA.Port())
		bd.b.release(s.GateB.Port())
		return err
	}
	if s.Index >= m.nextIndex && s.Index < maxIndex {
		m.nextIndex = s.Index + 1
	}
	return nil
}

// samePlace reports whether a and b hold the same ports and marks.
func samePlace(a, b *Session) bool {
	return a.Switchboard == b.Switchboard && a.Index == b.Index && a.GateA == b.GateA && a.GateB == b.GateB
}

// evict deletes the local sessions holding s's index or ports: the active
// router freed them in changes this standby missed.
func (m *Manager) evict(ctx context.Context, s *Session) error {
	var victims []string
	for id, e := range m.sessions {
		if e.s.Index == s.Index || e.s.GateA == s.GateA || e.s.GateB == s.GateB {
			victims = append(victims, id)
		}
	}
	for _, id := range victims {
		if err := m.delete(ctx, id, EndGone); err != nil {
			return err
		}
	}
	return nil
}
