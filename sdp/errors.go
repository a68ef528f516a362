package sdp

import "fmt"

// ParseError reports SDP that cannot be parsed or safely rewritten.
// Line counts from 1 over every line of the body, blank ones included.
type ParseError struct {
	Line int    // 1-based line number
	Msg  string // what is wrong, lower case, quoting the offending value
}

// Error returns the message in the form `sdp: line 7: invalid port "70000"`.
func (e *ParseError) Error() string {
	return fmt.Sprintf("sdp: line %d: %s", e.Line, e.Msg)
}
