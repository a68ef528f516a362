package switchboard

import "errors"

// Errors callers branch on (front ends map them to their protocol's replies).
// They are wrapped with the context of what failed.
var (
	// ErrNotFound: no session has the given id.
	ErrNotFound = errors.New("no such session")
	// ErrUnknownSwitchboard: no switchboard has the given name.
	ErrUnknownSwitchboard = errors.New("no such switchboard")
	// ErrPortsExhausted: a gate has no free port pair left.
	ErrPortsExhausted = errors.New("no free port pair")
	// ErrInvalid: the request itself is wrong.
	ErrInvalid = errors.New("invalid request")
	// ErrSessionLimit: the switchboard holds max-sessions sessions, or a
	// call or request asks for more streams than a front end allows. The
	// front ends refuse it as their protocol words a full relay, so that
	// the SIP proxy tries another.
	ErrSessionLimit = errors.New("session limit reached")
	// ErrTooLarge: a request exceeds a size limit (labels, cookies);
	// the error names the limit.
	ErrTooLarge = errors.New("request exceeds a limit")
)
