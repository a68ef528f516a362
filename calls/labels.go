package calls

import (
	"strconv"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Labels stored on the sessions of every protocol's calls: Restore rebuilds
// the table from them.
const (
	// labelOwner is the protocol of the call ("ng", "rtpproxy", ...), so
	// that Restore leaves sessions made through the HTTP API (which may
	// carry a call-id too) alone.
	labelOwner       = "owner"
	labelCall        = "call-id"
	labelBranch      = "branch"
	labelOfferer     = "offerer-tag"
	labelOffererSide = "offerer-side"
	labelAnswerer    = "answerer-tag"
	labelDialogID    = "dialog-id"
	// labelMedianum is the medianum of an rtpproxy stream's creator: its
	// offerer-tag is the SIP tag alone, as for every protocol.
	labelMedianum = "medianum"
	labelMedia    = sdprelay.LabelMedia // the stream's media index
)

// Labels of a stream's timeout notification (rtpproxy's notify_socket and
// notify_tag), read by package notify when a timeout ends the session.
const (
	LabelNotifySocket = "rtpproxy-notify-socket"
	LabelNotifyTag    = "rtpproxy-notify-tag"
)

// maxMedia bounds a restored media index (a label is untrusted input).
const maxMedia = switchboard.MaxStreamsPerCall

// labels is what a session's labels say of its call.
type labels struct {
	key
	branch, offerer, answerer, dialogID string
	side                                switchboard.Side
	media                               int
}

// write returns the labels that record stream media of dialog d of call k.
func (d *dialog) labels(k key, media int) map[string]string {
	l := map[string]string{labelOwner: string(k.proto), labelCall: k.id, labelOfferer: d.offerer,
		labelOffererSide: string(d.offererSide), labelAnswerer: d.answerer, labelMedia: strconv.Itoa(media)}
	if d.branch != "" {
		l[labelBranch] = d.branch
	}
	if k.proto == RTPProxy {
		if i := strings.LastIndexByte(d.offerer, ';'); i >= 0 {
			l[labelOfferer], l[labelMedianum] = d.offerer[:i], d.offerer[i+1:]
		}
	}
	if d.dialogID != "" {
		l[labelDialogID] = d.dialogID
	}
	return l
}

// readLabels reads the call of s from its labels: this version's, else
// those each front end wrote before the call layer was one (kept so that
// an upgrade restores the calls of the previous version; they are
// replaced by this version's at the stream's next change).
func readLabels(s *switchboard.Session) (labels, bool) {
	l := s.Labels
	switch {
	case l[labelOwner] == "calls": // ng, before the protocols shared the table
		return current(s, NG)
	case l[labelOwner] != "":
		p := Protocol(l[labelOwner])
		switch p {
		case NG, RTPProxy, LRKProxy, MediaProxy:
			return current(s, p)
		}
		return labels{}, false
	case l[legacyRTPCall] != "":
		return legacyRTPProxy(l)
	case l[legacyLRKCall] != "":
		return labels{key: key{LRKProxy, l[legacyLRKCall]}, side: switchboard.SideA}, true
	case l[legacyMPCall] != "":
		return legacyMediaProxy(l)
	}
	return labels{}, false
}

func current(s *switchboard.Session, p Protocol) (labels, bool) {
	l := s.Labels
	r := labels{key: key{p, l[labelCall]}, branch: l[labelBranch], offerer: l[labelOfferer],
		answerer: l[labelAnswerer], dialogID: l[labelDialogID], side: switchboard.Side(l[labelOffererSide])}
	if r.id == "" {
		return labels{}, false
	}
	if m, ok := l[labelMedianum]; ok && p == RTPProxy {
		r.offerer += ";" + m
	}
	if !r.side.Valid() {
		r.side = switchboard.SideA
	}
	m, err := strconv.Atoi(l[labelMedia])
	if err != nil || m < 0 || m >= maxMedia {
		m = 0
	}
	r.media = m
	return r, true
}

// The labels of the front ends' own tables before the call layer was one.
const (
	legacyRTPCall  = "rtpproxy-call-id"
	legacyRTPFrom  = "rtpproxy-from-tag" // the creator's tag, without the medianum
	legacyRTPMedia = "rtpproxy-medianum" // absent when the creator sent none
	legacyRTPTo    = "rtpproxy-to-tag"
	legacyRTPSide  = "rtpproxy-side"

	legacyLRKCall = "lrkproxy-call-id"

	legacyMPCall     = "mediaproxy-call-id"
	legacyMPFromTag  = "mediaproxy-from-tag"
	legacyMPStream   = "mediaproxy-stream"
	legacyMPSide     = "mediaproxy-caller-side"
	legacyMPDialogID = "mediaproxy-dialog-id"
)

func legacyRTPProxy(l map[string]string) (labels, bool) {
	r := labels{key: key{RTPProxy, l[legacyRTPCall]}, offerer: l[legacyRTPFrom], answerer: l[legacyRTPTo],
		side: switchboard.Side(l[legacyRTPSide])}
	if r.offerer == "" || !r.side.Valid() {
		return labels{}, false
	}
	if m, ok := l[legacyRTPMedia]; ok {
		r.offerer += ";" + m
	}
	return r, true
}

func legacyMediaProxy(l map[string]string) (labels, bool) {
	r := labels{key: key{MediaProxy, l[legacyMPCall]}, offerer: l[legacyMPFromTag], dialogID: l[legacyMPDialogID],
		side: switchboard.Side(l[legacyMPSide])}
	n, err := strconv.Atoi(l[legacyMPStream])
	if r.offerer == "" || err != nil || n < 0 || n >= maxMedia || !r.side.Valid() {
		return labels{}, false
	}
	r.media = n
	return r, true
}
