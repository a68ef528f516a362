package switchboard

import "path/filepath"

// BoardStats counts one switchboard's sessions and the port pairs its gates
// have left, as metrics read them.
type BoardStats struct {
	Name            string
	Ringing, Active int
	// FreeA and FreeB are the RTP/RTCP port pairs gate-a and gate-b can
	// still hand out.
	FreeA, FreeB int
}

// Stats returns the counts of every switchboard, in configuration order.
// It walks the sessions once under the Manager's lock (~1 ms at 50k).
func (m *Manager) Stats() []BoardStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	byName := make(map[string]*BoardStats, len(m.boards))
	out := make([]BoardStats, len(m.cfg.Switchboards))
	for i, sb := range m.cfg.Switchboards {
		bd := m.boards[sb.Name]
		out[i] = BoardStats{Name: sb.Name, FreeA: bd.a.free, FreeB: bd.b.free}
		byName[sb.Name] = &out[i]
	}
	for _, e := range m.sessions {
		st := byName[e.s.Switchboard]
		if st == nil {
			continue
		}
		if e.s.State == Ringing {
			st.Ringing++
		} else {
			st.Active++
		}
	}
	return out
}

// Observer hears of the Manager's decisions that metrics count. Its
// methods are called with the Manager's lock held: they must be quick and
// must not call the Manager.
type Observer interface {
	// Learned: a gate of the switchboard took a peer's source.
	Learned(switchboard string)
	// Refused: a stranger's flow to a locked gate was deleted.
	Refused(switchboard string)
	// Compacted: the journal was rewritten to its live records.
	Compacted()
}

// nopObserver is the Observer of a Manager without one.
type nopObserver struct{}

func (nopObserver) Learned(string) {}
func (nopObserver) Refused(string) {}
func (nopObserver) Compacted()     {}

// JournalFile is the path of the session journal in stateDir.
func JournalFile(stateDir string) string { return filepath.Join(stateDir, journalName) }
