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
		Use:     "ls [DIR] [-o json] [--app NAME]",
		Aliases: []string{"list"},
		Short:   "List previews",
		Long: "ls lists the previews of the configured owner, found by their labels. With DIR,\n" +
			"the previews of DIR's app, with the providers of DIR/glimpse.yaml (as up and down\n" +
			"read them); with --dir DIR, every app's previews on DIR's providers; otherwise\n" +
			"every app's previews on the local stack.\n\n" +
			"IDLE AFTER (idle in JSON) is the idle timeout in force and where it comes from:\n" +
			"the app's glimpse.yaml idle.after beats the daemon's 'glimpse serve --idle-after'\n" +
			"(serve), else the default 15m (default).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var providers config.Providers
			switch {
			case len(args) == 1:
				if dir != "" {
					return preview.Errorf(preview.InvalidArgument, "give the app directory once: as DIR or as --dir, not both")
				}
				var err error
				if app, providers, err = appAndProviders(args, app); err != nil {
					return err
				}
			case dir != "":
				file, err := config.Load(dir)
				if err != nil {
					return err
				}
				providers = file.Providers
			}
			if app != "" {
				if err := preview.ValidateDNSLabel(app); err != nil {
					return preview.Errorf(preview.InvalidArgument, "--app %q: %v", app, err)
				}
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
			if def := daemonIdle(cmd.Context(), home, providers); def != nil {
				list = preview.DefaultIdle(list, *def)
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
			fmt.Fprintln(tw, "APP\tPR\tCOMMIT\tSTATUS\tREPLICAS\tLAST REQUEST\tIDLE AFTER\tURL")
			now := time.Now()
			for _, p := range list {
				last := "-"
				if p.LastRequest != nil {
					last = now.Sub(*p.LastRequest).Round(time.Second).String() + " ago"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", p.App, p.PR, shortCommit(p.Commit), p.Status, p.Replicas, last, idleColumn(p.Idle), p.URL)
			}
			return tw.Flush()
		},
	}
	outputFlag(c, &output, "one preview a line")
	c.Flags().StringVar(&app, "app", "", "only this app's previews")
	c.Flags().StringVar(&dir, "dir", "", "read providers from DIR/glimpse.yaml, list every app's previews")
	return c
}
