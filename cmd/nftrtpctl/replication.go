package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/replication"
	"github.com/spf13/cobra"
)

func replicationCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replication",
		Short: "Show a router pair's role and whether replication is in sync",
		Args:  args(0, "replication takes no arguments"),
		RunE: func(*cobra.Command, []string) error {
			return g.call(func(ctx context.Context, c *httpapi.Client) error {
				raw, err := c.Replication(ctx)
				if err != nil {
					return err
				}
				var st replication.Status
				if err := json.Unmarshal(raw, &st); err != nil {
					return fmt.Errorf("replication status: %w", err)
				}
				return g.print(st, func(w io.Writer) error { return replicationTable(w, st) })
			})
		},
	}
}

// replicationTable prints st for people.
func replicationTable(w io.Writer, st replication.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "role\t%s (since %s)\n", st.Role, st.Since.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(tw, "in sync\t%v\n", st.InSync)
	switch {
	case st.Publisher != nil:
		p := st.Publisher
		fmt.Fprintf(tw, "epoch\t%s\nseq\t%d\nqueued\t%d\n", p.Epoch, p.Seq, p.Queued)
		if p.LastErr != "" {
			fmt.Fprintf(tw, "error\t%s\n", p.LastErr)
		}
	case st.Follower != nil:
		f := st.Follower
		fmt.Fprintf(tw, "epoch\t%s\nseq\t%d\napplied\t%d\n", f.Epoch, f.Seq, f.Applied)
		if f.LastErr != "" {
			fmt.Fprintf(tw, "error\t%s\n", f.LastErr)
		}
	}
	return tw.Flush()
}
