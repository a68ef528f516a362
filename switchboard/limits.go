package switchboard

import "fmt"

// Limits on what a control client can make the Manager hold.
const (
	// MaxLabels caps the labels of one session.
	MaxLabels = 32
	// MaxLabelBytes caps one label, its key and value together.
	MaxLabelBytes = 1024
	// MaxStreamsPerRequest caps the active m-lines (streams, one session
	// each) of one SDP or request.
	MaxStreamsPerRequest = 32
	// MaxStreamsPerCall caps the streams (sessions) of one call, over all
	// its forks and re-INVITEs.
	MaxStreamsPerCall = 64
)

// CheckStreams refuses n streams of one request, or a call that would
// hold n, beyond the limit named max.
func CheckStreams(what string, n, max int) error {
	if n > max {
		return fmt.Errorf("%w: %d streams %s, above the limit of %d", ErrSessionLimit, n, what, max)
	}
	return nil
}

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
