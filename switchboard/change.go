package switchboard

import (
	"context"
	"fmt"
)

// ChangeRequest is one request's change to several sessions at once (an
// SDP whose m-lines are streams allocated, updated or released together).
type ChangeRequest struct {
	// Alloc creates these sessions, in order.
	Alloc []AllocRequest
	// Update changes these sessions.
	Update []SessionUpdate
	// Delete removes these sessions.
	Delete []string
}

// SessionUpdate is an update of the session ID.
type SessionUpdate struct {
	ID string
	UpdateRequest
}

// ChangeResult is what a committed ChangeRequest made: the sessions
// allocated and updated, in the request's order. They are the committed
// sessions themselves: read them, do not modify them (Session).
type ChangeResult struct {
	Allocated []*Session
	Updated   []*Session
}

// Change commits r as one transaction: every session it allocates, updates
// and deletes changes in one kernel transaction and one journal record, or,
// if anything in it is refused (bad input, exhausted ports, the kernel, the
// journal), nothing changes at all. A session may appear once among the
// updates and deletes.
func (m *Manager) Change(ctx context.Context, r ChangeRequest) (*ChangeResult, error) {
	if err := m.lockRequest(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	t, res, err := m.prepareChange(r)
	if err != nil {
		return nil, err
	}
	if len(t.changes) == 0 {
		return res, nil
	}
	if err := m.submit(ctx, t); err != nil {
		return nil, err
	}
	for _, s := range res.Allocated {
		m.logAlloc(s, "session allocated")
	}
	for _, s := range res.Updated {
		m.logUpdate(s)
	}
	return res, nil
}

// prepareChange checks r and builds its transaction. On error, what the
// changes prepared so far claimed is released.
func (m *Manager) prepareChange(r ChangeRequest) (_ *txn, _ *ChangeResult, err error) {
	t, res := newTxn(), &ChangeResult{}
	defer func() {
		if err != nil {
			t.fail(err)
		}
	}()
	m.settleAll(r)
	seen := map[string]bool{}
	touch := func(id string) (*entry, error) {
		if seen[id] {
			return nil, fmt.Errorf("session %s: %w: named twice in one request", id, ErrInvalid)
		}
		seen[id] = true
		return m.get(id)
	}
	for _, u := range r.Update {
		e, err := touch(u.ID)
		if err != nil {
			return nil, nil, err
		}
		c, err := m.prepareUpdate(e, u.UpdateRequest)
		if err != nil {
			return nil, nil, err
		}
		t.changes = append(t.changes, c)
		res.Updated = append(res.Updated, c.next)
	}
	for _, id := range r.Delete {
		e, err := touch(id)
		if err != nil {
			return nil, nil, err
		}
		t.changes = append(t.changes, m.deleteChange(e, EndDeleted))
	}
	for i, a := range r.Alloc {
		c, err := m.prepareAlloc(a)
		if err != nil {
			return nil, nil, fmt.Errorf("alloc %d of %d: %w", i+1, len(r.Alloc), err)
		}
		t.changes = append(t.changes, c)
		res.Allocated = append(res.Allocated, c.next)
	}
	return t, res, nil
}

// settleAll waits until no session r names has a change queued, letting go
// of m.mu meanwhile, so that every change of r is prepared from committed
// state without waiting again halfway (which would let another request
// change a session r has already prepared).
func (m *Manager) settleAll(r ChangeRequest) {
	for {
		pending := false
		for _, u := range r.Update {
			pending = pending || m.isPending(u.ID)
		}
		for _, id := range r.Delete {
			pending = pending || m.isPending(id)
		}
		if !pending {
			return
		}
		m.q.cond.Wait()
	}
}

func (m *Manager) isPending(id string) bool {
	e := m.sessions[id]
	return e != nil && e.pending
}
