package switchboard

import (
	"context"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// mediaCheckInterval is how often the media timeout looks at the kernel's
// flows: a third of the shortest media timeout, between 100 ms and 10 s.
func (m *Manager) mediaCheckInterval() time.Duration {
	shortest := time.Duration(0)
	for _, sb := range m.cfg.Switchboards {
		if t := sb.Timeouts.Media; t > 0 && (shortest == 0 || t < shortest) {
			shortest = t
		}
	}
	if shortest == 0 {
		return 0
	}
	return min(max(shortest/3, 100*time.Millisecond), 10*time.Second)
}

// runMediaTimeouts deletes answered sessions that carried no media for their
// switchboard's media timeout, until ctx is done. Its dumps also remember
// every flow for its leg's next change and delete stale ones (flows.go). A session has media while
// the kernel holds a conntrack entry of one of its legs; entries outlive the
// last packet by the UDP conntrack timeout (30 s by default), so a session
// ends between media-timeout and media-timeout + 30 s after its last packet.
func (m *Manager) runMediaTimeouts(ctx context.Context) error {
	every := m.mediaCheckInterval()
	if every == 0 {
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.checkMedia(ctx)
		}
	}
}

func (m *Manager) checkMedia(ctx context.Context) {
	flows, err := m.dp.Flows(ctx)
	if err != nil {
		m.log.Warn("reading flows for the media timeout failed", "err", err)
		return
	}
	m.lockSettled()
	flowing := make(map[uint32]bool, len(flows))
	var gone []relay.Flow
	for _, f := range flows {
		if m.observe(f) {
			gone = append(gone, f)
			continue
		}
		idx, _, _ := legSide(f.Mark)
		flowing[idx] = true
	}
	m.deleteStale(gone)
	now := m.now()
	var silent []silence
	for id, e := range m.sessions {
		s := e.s
		if flowing[s.Index] {
			e.lastMedia = now
			continue
		}
		limit := m.boards[s.Switchboard].sb.Timeouts.Media
		if limit <= 0 || s.State != Active || s.A.Signalled.held() || s.B.Signalled.held() {
			continue
		}
		since := s.Updated
		if e.lastMedia.After(since) {
			since = e.lastMedia
		}
		if now.Sub(since) >= limit {
			silent = append(silent, silence{id, e.changed})
		}
	}
	m.mu.Unlock()
	m.endSilent(ctx, silent)
}

// silence is a session the media check found silent for its media
// timeout, and its Manager.changes then.
type silence struct {
	id      string
	changed uint64
}

// endSilent ends the sessions of silent that have not changed since, a
// batch (timerBatch) at a time, each batch in one group commit, with the
// lock let go between batches: a network outage silences thousands of
// calls at once, and ending them one transaction each in one hold of the
// lock kept every request waiting.
func (m *Manager) endSilent(ctx context.Context, silent []silence) {
	for len(silent) > 0 {
		batch := silent[:min(len(silent), timerBatch)]
		silent = silent[len(batch):]
		m.lockSettled()
		var ends []*txn
		for _, x := range batch {
			if e := m.sessions[x.id]; e != nil && e.changed == x.changed {
				ends = append(ends, newTxn(m.deleteChange(e, EndMediaTimeout)))
			}
		}
		if len(ends) > 0 {
			m.commitGroup(ctx, ends)
		}
		for _, t := range ends {
			if t.err != nil {
				m.log.Error("expiring a session without media failed", "session", t.ids(), "err", t.err)
			}
		}
		m.mu.Unlock()
	}
}
