package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

func newLogs(g *globalFlags) *cobra.Command {
	var prFlag, app, since, tail, output string
	var follow bool
	c := &cobra.Command{
		Use:   "logs [DIR] --pr N [-f] [--since 10m|RFC3339] [--tail N]",
		Short: "Print (or follow) the function logs of a pull request's preview",
		Long: "logs prints what the preview's function wrote to stdout and stderr, each line\n" +
			"with the time it was written, through the function runtime (the local stack by\n" +
			"default; an OpenFaaS gateway's /system/logs otherwise). -f keeps printing new\n" +
			"lines until interrupted. The app name comes from DIR/glimpse.yaml (default .),\n" +
			"or from --app.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pr, err := parsePR(prFlag)
			if err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			opts := preview.LogOptions{Follow: follow}
			if opts.Since, err = parseSince(since, time.Now()); err != nil {
				return err
			}
			if tail != "" {
				if opts.Tail, err = strconv.Atoi(tail); err != nil {
					return preview.Errorf(preview.InvalidArgument, "--tail must be a number of lines, got %q", tail)
				}
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
			lr, ok := pl.Runtime.(preview.LogReader)
			if !ok {
				return preview.Errorf(preview.Unimplemented, "the configured function runtime does not serve logs")
			}
			name, err := previewFunction(cmd.Context(), pl, app, pr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			err = lr.Logs(cmd.Context(), name, opts, func(l preview.LogLine) error {
				if output == "json" {
					return enc.Encode(l)
				}
				if l.Time.IsZero() {
					_, err := fmt.Fprintln(out, l.Text)
					return err
				}
				_, err := fmt.Fprintf(out, "%s %s\n", l.Time.Local().Format(time.RFC3339), l.Text)
				return err
			})
			switch {
			case preview.IsNotFound(err):
				return preview.Errorf(preview.NotFound, "%s: pull request #%d has no function deployed (see 'glimpse ls')", app, pr)
			case err != nil && cmd.Context().Err() != nil && errors.Is(err, cmd.Context().Err()):
				return nil // interrupted while following
			}
			return err
		},
	}
	c.Flags().StringVar(&prFlag, "pr", "", "pull request number (required)")
	c.Flags().StringVar(&app, "app", "", "app name, when there is no glimpse.yaml at hand")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	c.Flags().StringVar(&since, "since", "", "only lines written since then: a duration (10m, 1h30m) or an RFC3339 time")
	c.Flags().StringVar(&tail, "tail", "", "only the last N lines (of those --since selects)")
	outputFlag(c, &output, "time and text; json is one object a line")
	return c
}

// parseSince reads --since: a positive duration before now, or an RFC3339
// time; "" is the zero time (everything).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, preview.Errorf(preview.InvalidArgument, "--since must be a positive duration such as 10m, or an RFC3339 time, got %q", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, preview.Errorf(preview.InvalidArgument, "--since must be a duration such as 10m, or an RFC3339 time such as 2026-01-02T15:04:05Z, got %q", s)
}

// appAndProviders resolves the app name and providers as down does: from
// DIR/glimpse.yaml (default .) unless only --app is given.
func appAndProviders(args []string, app string) (string, config.Providers, error) {
	var providers config.Providers
	if app == "" || len(args) == 1 {
		file, err := config.Load(dirArg(args))
		if err != nil {
			return "", providers, err
		}
		if app != "" && app != file.App {
			return "", providers, preview.Errorf(preview.InvalidArgument, "--app %s does not match app %s in %s", app, file.App, dirArg(args))
		}
		app, providers = file.App, file.Providers
	}
	if err := preview.ValidateDNSLabel(app); err != nil {
		return "", providers, preview.Errorf(preview.InvalidArgument, "--app %q: %v", app, err)
	}
	return app, providers, nil
}

// previewFunction returns the name of the preview's function: the one its
// route names, or the one Up would deploy.
func previewFunction(ctx context.Context, pl *preview.Pipeline, app string, pr int) (string, error) {
	r, err := pl.Router.Route(ctx, preview.Host(app, pr, pl.BaseDomain))
	switch {
	case err == nil && r.Function != "" && !r.Deleted:
		return r.Function, nil
	case err != nil && !preview.IsNotFound(err):
		return "", err
	}
	return preview.FunctionName(app, pr), nil
}
