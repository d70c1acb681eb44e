package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

func newList(g *globalFlags) *cobra.Command {
	var output, app, dir string
	c := &cobra.Command{
		Use:     "ls [-o json] [--app NAME]",
		Aliases: []string{"list"},
		Short:   "List previews",
		Long: "ls lists the previews of the configured owner, found by their labels. With\n" +
			"--dir, providers come from that app's glimpse.yaml; otherwise the local stack.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if app != "" {
				if err := preview.ValidateDNSLabel(app); err != nil {
					return preview.Errorf(preview.InvalidArgument, "--app %q: %v", app, err)
				}
			}
			var providers config.Providers
			if dir != "" {
				file, err := config.Load(dir)
				if err != nil {
					return err
				}
				providers = file.Providers
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			pl, err := openPipeline(cmd.Context(), home, providers)
			if err != nil {
				return err
			}
			list, err := pl.List(cmd.Context(), app)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no previews")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tPR\tCOMMIT\tSTATUS\tREPLICAS\tLAST REQUEST\tURL")
			now := time.Now()
			for _, p := range list {
				last := "-"
				if p.LastRequest != nil {
					last = now.Sub(*p.LastRequest).Round(time.Second).String() + " ago"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", p.App, p.PR, shortCommit(p.Commit), p.Status, p.Replicas, last, p.URL)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "output format: json or table (default table)")
	c.Flags().StringVar(&app, "app", "", "only this app's previews")
	c.Flags().StringVar(&dir, "dir", "", "read providers from DIR/glimpse.yaml")
	return c
}
