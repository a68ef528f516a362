package switchboard

import "fmt"

// Limits on what a control client can make the Manager hold.
const (
	// MaxLabels caps the labels of one session.
	MaxLabels = 32
	// MaxLabelBytes caps one label, its key and value together.
	MaxLabelBytes = 1024
)

// checkLabels refuses label sets beyond MaxLabels or MaxLabelBytes.
func checkLabels(l map[string]string) error {
	if len(l) > MaxLabels {
		return fmt.Errorf("%w: %d labels, above the limit of %d per session", ErrTooLarge, len(l), MaxLabels)
	}
	for k, v := range l {
		if len(k)+len(v) > MaxLabelBytes {
			return fmt.Errorf("%w: label %.32q: %d bytes, above the limit of %d per label", ErrTooLarge, k, len(k)+len(v), MaxLabelBytes)
		}
	}
	return nil
}

// checkCapacity refuses a new session when the switchboard holds its
// max-sessions. Every session holds exactly one gate-a port pair, so the
// pairs in use are the sessions.
func (bd *board) checkCapacity() error {
	if bd.sb.MaxSessions > 0 && bd.a.inUse() >= bd.sb.MaxSessions {
		return fmt.Errorf("switchboard %q: %w: max-sessions %d", bd.sb.Name, ErrSessionLimit, bd.sb.MaxSessions)
	}
	return nil
}
