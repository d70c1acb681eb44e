package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

func newDown(g *globalFlags) *cobra.Command {
	var prFlag, app string
	c := &cobra.Command{
		Use:   "down [DIR] --pr N",
		Short: "Remove a pull request's preview and everything it created",
		Long: "down removes the DNS record, route, function and asset manifest of the preview,\n" +
			"found by their ownership labels. Removing a preview that is already gone succeeds.\n" +
			"The app name comes from DIR/glimpse.yaml (default .), or from --app.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pr, err := parsePR(prFlag)
			if err != nil {
				return err
			}
			var providers config.Providers
			if app == "" || len(args) == 1 {
				file, err := config.Load(dirArg(args))
				if err != nil {
					return err
				}
				if app != "" && app != file.App {
					return preview.Errorf(preview.InvalidArgument, "--app %s does not match app %s in %s", app, file.App, dirArg(args))
				}
				app, providers = file.App, file.Providers
			}
			if err := preview.ValidateDNSLabel(app); err != nil {
				return preview.Errorf(preview.InvalidArgument, "--app %q: %v", app, err)
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			pl, err := openPipeline(cmd.Context(), home, providers)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			pl.OnEvent = progressPrinter(stderr)
			fmt.Fprintf(stderr, "%s: removing the preview of pull request #%d\n", app, pr)
			if err := pl.Down(cmd.Context(), app, pr); err != nil {
				return errors.New("down incomplete (run it again to retry): " + err.Error())
			}
			fmt.Fprintln(cmd.OutOrStdout(), "removed", preview.Host(app, pr, pl.BaseDomain))
			return nil
		},
	}
	c.Flags().StringVar(&prFlag, "pr", "", "pull request number (required)")
	c.Flags().StringVar(&app, "app", "", "app name, when there is no glimpse.yaml at hand")
	return c
}
