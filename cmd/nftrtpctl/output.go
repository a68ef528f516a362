package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes tab-separated rows as aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }
func (t *table) flush() error        { return t.tw.Flush() }

// addr prints an address, "-" when unset.
func addr(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}

// peer is where a side's media goes: the learned address, else the
// signalled one.
func peer(p switchboard.Peer) string {
	if p.Learned.RTP.IsValid() {
		return p.Learned.RTP.String() + " (learned)"
	}
	return addr(p.Signalled.RTP)
}

func labels(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	return labelsFlag(l).String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func sessionTable(w io.Writer, s *switchboard.Session) error {
	t := newTable(w)
	for _, kv := range [][2]string{
		{"id", s.ID}, {"switchboard", s.Switchboard}, {"state", string(s.State)},
		{"gate a", addr(s.GateA)}, {"peer a", peer(s.A)},
		{"gate b", addr(s.GateB)}, {"peer b", peer(s.B)},
		{"created", when(s.Created)}, {"expires", when(s.Expires)}, {"labels", labels(s.Labels)},
	} {
		t.row(kv[0]+":", kv[1])
	}
	return t.flush()
}

func detailsTable(w io.Writer, d *switchboard.Details) error {
	if err := sessionTable(w, d.Session); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w, "LEG", "GATE", "PEER", "SOURCE", "FLOWS", "PACKETS", "BYTES", "LAST PACKET")
	for _, l := range d.Legs {
		t.row(l.Name, addr(l.Gate), addr(l.Peer), addr(l.Source), fmt.Sprint(l.Flows),
			fmt.Sprint(l.Packets), fmt.Sprint(l.Bytes), when(l.LastPacket))
	}
	return t.flush()
}

func sessionsTable(w io.Writer, l []*switchboard.Session) error {
	t := newTable(w, "ID", "SWITCHBOARD", "STATE", "GATE A", "PEER A", "GATE B", "PEER B", "CREATED", "LABELS")
	for _, s := range l {
		t.row(s.ID, s.Switchboard, string(s.State), addr(s.GateA), peer(s.A), addr(s.GateB), peer(s.B),
			when(s.Created), labels(s.Labels))
	}
	return t.flush()
}

func routesTable(w io.Writer, r []switchboard.Route) error {
	t := newTable(w, "SWITCHBOARD", "DIRECTION")
	for _, x := range r {
		t.row(x.Switchboard, string(x.Direction))
	}
	return t.flush()
}

func switchboardsTable(w io.Writer, v []httpapi.SwitchboardView) error {
	t := newTable(w, "SWITCHBOARD", "GATE A", "ADDRESS", "PORTS", "GATE B", "ADDRESS", "PORTS")
	for _, s := range v {
		t.row(s.Name, s.GateA.Name, s.GateA.Address, s.GateA.Ports, s.GateB.Name, s.GateB.Address, s.GateB.Ports)
	}
	return t.flush()
}

func countTable(w io.Writer, n Count) error {
	t := newTable(w, "SWITCHBOARD", "RINGING", "ACTIVE", "SESSIONS")
	for _, name := range sortedKeys(n.Switchboards) {
		st := n.Switchboards[name]
		sum := 0
		for _, k := range st {
			sum += k
		}
		t.row(name, fmt.Sprint(st[string(switchboard.Ringing)]), fmt.Sprint(st[string(switchboard.Active)]), fmt.Sprint(sum))
	}
	t.row("total", "", "", fmt.Sprint(n.Sessions))
	return t.flush()
}

func totalsTable(w io.Writer, tot *Totals) error {
	t := newTable(w, "SWITCHBOARD", "SESSIONS", "PACKETS", "BYTES")
	for _, name := range sortedKeys(tot.Switchboards) {
		s := tot.Switchboards[name]
		t.row(name, fmt.Sprint(s.Sessions), fmt.Sprint(s.Packets), fmt.Sprint(s.Bytes))
	}
	t.row("total", fmt.Sprint(tot.Total.Sessions), fmt.Sprint(tot.Total.Packets), fmt.Sprint(tot.Total.Bytes))
	return t.flush()
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for name := range m {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}
