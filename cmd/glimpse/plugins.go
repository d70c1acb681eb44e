package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/plugin"
)

// newPlugins is `glimpse plugins`: the provider plugins Glimpse finds for
// unknown URL schemes, with what each serves. A plugin that fails its
// handshake is listed with a one-line error; the command itself fails only
// on bad flags.
func newPlugins(g *globalFlags) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "plugins [-o json]",
		Short: "List the provider plugins found in $GLIMPSE_HOME/plugins and on PATH",
		Long: "plugins starts every glimpse-plugin-* executable found in $GLIMPSE_HOME/plugins\n" +
			"and then on PATH (the first of a name wins), asks its name, version, protocol\n" +
			"version and the interfaces it serves, and stops it again. URL scheme foo in\n" +
			"glimpse.yaml is served by glimpse-plugin-foo.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err // also when run on its own, without the root's check
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			found := plugin.Finder{Dir: filepath.Join(home, "plugins")}.List(cmd.Context())
			if found == nil {
				found = []plugin.Found{}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(found)
			}
			if len(found) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no plugins in %s or on PATH\n", filepath.Join(home, "plugins"))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCHEME\tNAME\tVERSION\tPROTOCOL\tINTERFACES\tPATH")
			for _, f := range found {
				if f.Error != "" {
					fmt.Fprintf(tw, "%s\t-\t-\t-\terror: %s\t%s\n", f.Scheme, f.Error, f.Path)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", f.Scheme, f.Name, f.Version, f.ProtocolVersion, strings.Join(f.Interfaces, ","), f.Path)
			}
			return tw.Flush()
		},
	}
	outputFlag(c, &output, "one line per plugin")
	return c
}
