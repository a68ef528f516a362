package ng

import "errors"

// Errors a Backend wraps (fmt.Errorf("call %q: %w", id, ng.ErrUnknownCall))
// so that the reply carries the error-reason rtpengine would send; see the
// mapping in failure. Any other error is replied with its own message.
var (
	// ErrNoSDP: an offer or answer without an SDP body
	// ("No SDP body in message").
	ErrNoSDP = errors.New("no SDP body")
	// ErrNoCallID: a command that needs a call-id lacks it
	// ("No call-id in message").
	ErrNoCallID = errors.New("no call-id")
	// ErrNoFromTag: a command that needs a from-tag lacks it
	// ("No from-tag in message").
	ErrNoFromTag = errors.New("no from-tag")
	// ErrNoToTag: an answer without a to-tag ("No to-tag in message").
	ErrNoToTag = errors.New("no to-tag")
	// ErrUnknownCall: no call has the call-id, or none of its dialogs
	// matches the tags ("Unknown call-id"; a delete replies ok with a
	// warning instead, as rtpengine does, unless the flag fatal is given).
	ErrUnknownCall = errors.New("unknown call-id")
	// ErrInvalidSDP: the SDP body cannot be parsed or rewritten
	// ("Failed to parse SDP").
	ErrInvalidSDP = errors.New("invalid SDP")
	// ErrNoPorts: no port is free for the media ("Ran out of ports", on
	// which Kamailio tries its next media relay).
	ErrNoPorts = errors.New("ran out of ports")
	// ErrSessionLimit: the relay holds as many sessions or streams as it
	// may ("Parallel session limit reached", rtpengine's words when its
	// max-sessions is reached).
	ErrSessionLimit = errors.New("session limit reached")
)

// Errors of the request itself, worded for the reply by failure.
var (
	errNoCookie       = errors.New(`no cookie: want "<cookie> <dictionary>"`)
	errBencode        = errors.New("invalid bencode dictionary")
	errJSON           = errors.New("invalid JSON document")
	errNotDict        = errors.New("not a dictionary")
	errNoCommand      = errors.New("no command")
	errUnknownCommand = errors.New("unrecognized command")
	errNegativeLimit  = errors.New("invalid limit, must be >= 0")
	errLongCookie     = errors.New("cookie too long")
)
