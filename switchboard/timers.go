package switchboard

import (
	"container/heap"
	"context"
	"log/slog"
	"time"
)

// timerQueue is a min-heap of session deadlines (ringing expiry, learning
// windows closing). Entries are hints: when one fires the session is
// re-evaluated against the clock, so stale entries are harmless.
type timerQueue []timer

type timer struct {
	at time.Time
	id string
}

func (q timerQueue) Len() int           { return len(q) }
func (q timerQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q timerQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *timerQueue) Push(x any)        { *q = append(*q, x.(timer)) }
func (q *timerQueue) Pop() any {
	old := *q
	t := old[len(old)-1]
	*q = old[:len(old)-1]
	return t
}

// retryExpiry is how long after a failed expiry (the journal or the kernel
// refused it) it is tried again.
const retryExpiry = time.Second

// schedule queues the future deadlines of s. Called with m.mu held.
func (m *Manager) schedule(s *Session) {
	if m.standby {
		return // a standby's timers are the active router's (replica.go)
	}
	now := m.now()
	var earliest time.Time
	for _, at := range []time.Time{s.Expires, s.A.LearnUntil, s.B.LearnUntil} {
		if at.IsZero() || !at.After(now) {
			continue
		}
		heap.Push(&m.timers, timer{at: at, id: s.ID})
		if earliest.IsZero() || at.Before(earliest) {
			earliest = at
		}
	}
	// The timer goroutine sleeps until m.timersDue; a later deadline
	// waits for that wake-up, and only an earlier one needs another (a
	// wake-up per request costs a thread's wake-up on an idle machine).
	if !earliest.IsZero() && earliest.Before(m.timersDue) {
		m.timersDue = earliest
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// runTimers fires deadlines until ctx is done.
func (m *Manager) runTimers(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(m.fireDue(ctx))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.wake:
		}
	}
}

// timerBatch bounds the deadlines one hold of the Manager's lock handles:
// a burst of calls set up together closes its learning windows (or rings
// out) together, and 50k changes in one hold kept every request waiting
// for a second. The changes of a batch share one group commit.
const timerBatch = maxGroup

// fireDue handles the due deadlines, a batch at a time, and returns how
// long to sleep: a millisecond while more are due, so that requests take
// the lock between batches.
func (m *Manager) fireDue(ctx context.Context) time.Duration {
	m.lockSettled()
	defer m.mu.Unlock()
	now := m.now()
	var due []*txn
	seen := map[*entry]bool{}
	for n := 0; n < timerBatch && m.timers.Len() > 0 && !m.timers[0].at.After(now); {
		id := heap.Pop(&m.timers).(timer).id
		e := m.sessions[id]
		if e == nil || seen[e] {
			continue // a stale hint, or a session this batch handles already
		}
		seen[e] = true
		n++
		if t := m.reevaluate(e, now); t != nil {
			due = append(due, t)
		}
	}
	m.commitDue(ctx, due, now)
	sleep := time.Minute
	if m.timers.Len() > 0 {
		sleep = max(m.timers[0].at.Sub(now), time.Millisecond)
	}
	m.timersDue = now.Add(sleep)
	return sleep
}

// reevaluate returns the change that a session's due deadline makes: the
// end of an unanswered one, or the locks of its closed learning windows
// (nil: none to make). Called with m.mu held.
func (m *Manager) reevaluate(e *entry, now time.Time) *txn {
	s := e.s
	if s.State == Ringing && !now.Before(s.Expires) {
		return newTxn(m.deleteChange(e, EndRingingTimeout))
	}
	bd := m.boards[s.Switchboard]
	l := s.legs(bd.sb, now)
	had := m.installed(e)
	if b := diffLegs(had, l[:]); len(b.Add)+len(b.Remove) == 0 {
		return nil
	}
	return newTxn(m.putChange(e, s, false))
}

// commitDue commits the changes of due deadlines in one group (one kernel
// transaction and one journal write; a change the kernel refuses fails
// alone). An expiry that fails is tried again after retryExpiry. Called
// with m.mu held.
func (m *Manager) commitDue(ctx context.Context, due []*txn, now time.Time) {
	if len(due) == 0 {
		return
	}
	m.commitGroup(ctx, due)
	debug := m.log.Enabled(ctx, slog.LevelDebug)
	for _, t := range due {
		expiry := t.changes[0].next == nil
		switch {
		case t.err != nil && expiry:
			m.log.Error("expiring session failed; trying again", "session", t.ids(), "err", t.err)
			heap.Push(&m.timers, timer{at: now.Add(retryExpiry), id: t.ids()})
		case t.err != nil:
			m.log.Error("locking session after its learning window failed", "session", t.ids(), "err", t.err)
		case debug && !expiry:
			m.log.Debug("learning window closed", "session", t.ids())
		}
	}
}
