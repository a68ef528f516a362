package switchboard

// Side names one of a switchboard's two gates, and so the party whose
// network is on that gate: gate-a's or gate-b's. It is the one side type of
// the code base (the call layer, the SDP engine and every front end use
// it); its text is the "a" or "b" of labels, JSON and the command line.
type Side string

// Sides.
const (
	SideA Side = "a"
	SideB Side = "b"
)

// Other is the opposite side.
func (s Side) Other() Side {
	if s == SideA {
		return SideB
	}
	return SideA
}

// Valid reports whether s is SideA or SideB.
func (s Side) Valid() bool { return s == SideA || s == SideB }
