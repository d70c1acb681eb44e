package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/preview"
)

func newDown(g *globalFlags) *cobra.Command {
	var prFlag, app string
	c := &cobra.Command{
		Use:   "down [DIR] --pr N",
		Short: "Remove a pull request's preview and everything it created",
		Long: "down removes the DNS record, route, function and asset manifest of the preview,\n" +
			"found by their ownership labels. Removing a preview that is already gone succeeds\n" +
			"(stderr says there was none; stdout stays empty).\n" +
			"The app name comes from DIR/glimpse.yaml (default .), or from --app.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pr, err := parsePR(prFlag)
			if err != nil {
				return err
			}
			app, providers, err := appAndProviders(args, app)
			if err != nil {
				return err
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			pl, err := openPipeline(cmd.Context(), home, providers)
			if err != nil {
				return err
			}
			return runDown(cmd.Context(), pl, app, pr, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&prFlag, "pr", "", "pull request number (required)")
	c.Flags().StringVar(&app, "app", "", "app name, when there is no glimpse.yaml at hand")
	return c
}

// runDown removes the preview of app's pull request pr (Pipeline.Down,
// idempotent). When neither its route nor its function exists (never
// deployed, or removed already) it says so on stderr and prints nothing on
// stdout, and still runs Down, which removes what a crashed Up or Down
// left behind (assets, DNS record, image). Otherwise stdout gets
// "removed HOST".
func runDown(ctx context.Context, pl *preview.Pipeline, app string, pr int, stdout, stderr io.Writer) error {
	route, fn, err := lookupPreview(ctx, pl, app, pr)
	if err != nil {
		return err
	}
	exists := fn != nil || (route != nil && !route.Deleted)
	host := preview.Host(app, pr, pl.BaseDomain)
	if exists {
		fmt.Fprintf(stderr, "%s: removing the preview of pull request #%d\n", app, pr)
	}
	prog := stderrProgress(stderr)
	defer prog.Close()
	pl.OnEvent = prog.Event
	err = pl.Down(ctx, app, pr)
	prog.Close()
	if err != nil {
		return errors.New("down incomplete (run it again to retry): " + err.Error())
	}
	if !exists {
		fmt.Fprintf(stderr, "%s: pull request #%d has no preview (%s): nothing to remove\n", app, pr, host)
		return nil
	}
	fmt.Fprintln(stdout, "removed", host)
	return nil
}
