package switchboard

import (
	"context"
	"sync"
	"time"
)

// EndReason says why a session ended.
type EndReason string

// Reasons a session ends.
const (
	// EndDeleted: a control request deleted it.
	EndDeleted EndReason = "deleted"
	// EndRingingTimeout: it was never answered within the ringing timeout.
	EndRingingTimeout EndReason = "ringing-timeout"
	// EndMediaTimeout: it was answered and carried no media for the media
	// timeout.
	EndMediaTimeout EndReason = "media-timeout"
	// EndTakenOver: another node took the session over.
	EndTakenOver EndReason = "taken-over"
	// EndGone: a restart found it could not be restored (its switchboard or
	// ports are no longer configured).
	EndGone EndReason = "gone"
)

// logText is how the Manager's log line words a reason.
func (r EndReason) logText() string {
	switch r {
	case EndRingingTimeout:
		return "expired (ringing timeout)"
	case EndMediaTimeout:
		return "expired (media timeout)"
	default:
		return string(r)
	}
}

// Ended is the end of a session, as published to subscribers.
type Ended struct {
	// Session is the session's last state, read-only (Session): its
	// switchboard, its labels (call-id and tags of the front end that made
	// it) and the counters of its flows the kernel had ended
	// (Session.Ended).
	Session *Session
	Reason  EndReason
	At      time.Time
}

// Duration is how long the session lived.
func (e Ended) Duration() time.Duration { return e.At.Sub(e.Session.Created) }

// Subscription receives every session end, in the order the Manager
// committed them, from Subscribe until Close. Publishing never waits for a
// subscriber: ends queue until Next takes them, so a subscriber must keep
// reading (the queue holds at most the sessions that ended meanwhile). It
// is safe for concurrent use.
type Subscription struct {
	hub   *events
	mu    sync.Mutex
	queue []Ended
	ready chan struct{} // has a token while queue is not empty
}

// Next returns the next end, waiting for one until ctx is done.
func (s *Subscription) Next(ctx context.Context) (Ended, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			e := s.queue[0]
			s.queue[0] = Ended{}
			s.queue = s.queue[1:]
			if len(s.queue) > 0 {
				s.signal()
			}
			s.mu.Unlock()
			return e, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Ended{}, ctx.Err()
		case <-s.ready:
		}
	}
}

// Each calls fn with every end, in order, until ctx is done; it returns
// nil then. fn runs on Each's goroutine: while it runs, ends queue.
func (s *Subscription) Each(ctx context.Context, fn func(Ended)) error {
	for {
		e, err := s.Next(ctx)
		if err != nil {
			return nil // only ctx ends Next
		}
		fn(e)
	}
}

// Close stops the subscription; ends queued and not taken are dropped.
func (s *Subscription) Close() {
	s.hub.remove(s)
	s.mu.Lock()
	s.queue = nil
	s.mu.Unlock()
}

func (s *Subscription) push(e Ended) {
	s.mu.Lock()
	s.queue = append(s.queue, e)
	s.signal()
	s.mu.Unlock()
}

// signal leaves a token in ready unless one waits already. Called with s.mu
// held.
func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// events fans session ends out to the subscriptions.
type events struct {
	mu   sync.Mutex
	subs []*Subscription
}

func (h *events) add() *Subscription {
	s := &Subscription{hub: h, ready: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs = append(h.subs, s)
	h.mu.Unlock()
	return s
}

func (h *events) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.subs {
		if x == s {
			h.subs = append(h.subs[:i], h.subs[i+1:]...)
			return
		}
	}
}

func (h *events) publish(e Ended) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subs {
		s.push(e)
	}
}

// Subscribe returns a subscription to every session end from now on
// (subscribe before Start to also hear of sessions a restart could not
// restore). Close it when done.
func (m *Manager) Subscribe() *Subscription { return m.events.add() }

// ended publishes the end of s. Called with m.mu held, after the session
// left the Manager's tables.
func (m *Manager) publishEnd(s *Session, why EndReason) {
	m.events.publish(Ended{Session: s, Reason: why, At: m.now()})
}
