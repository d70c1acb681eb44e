// Command glimpse gives every pull request its own preview environment.
//
//	glimpse serve                      start the local stack (registry, runtime, edge)
//	glimpse up [DIR] --pr N            build, upload, deploy and route a preview
//	glimpse down [DIR] --pr N          remove a preview and everything it created
//	glimpse ls [DIR] [-o json]         list previews (of DIR's app)
//	glimpse status [DIR] --pr N        every resource of a preview
//	glimpse logs [DIR] --pr N [-f]     a preview's function logs
//	glimpse gc [--dry-run]             delete image tags of previews that are gone
//	glimpse version                    print the version (also --version)
//
// Errors are printed as one line on stderr with a non-zero exit status.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := execute(ctx, newRoot())
	stop()
	plugin.Shutdown() // no plugin process outlives the command
	if err != nil {
		fmt.Fprintln(os.Stderr, "glimpse: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

// execute runs root and returns the error main prints: cobra's
// unknown-command error, which carries its suggestions on lines of their
// own, becomes one line ("unknown command "upp"; did you mean: up?").
func execute(ctx context.Context, root *cobra.Command) error {
	err := root.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	if m := reUnknownCommand.FindStringSubmatch(err.Error()); m != nil {
		c := root
		if found, _, ferr := root.Find(strings.Fields(m[2])[1:]); ferr == nil {
			c = found
		}
		msg := fmt.Sprintf("unknown command %q", m[1])
		if s := c.SuggestionsFor(m[1]); len(s) > 0 {
			return errors.New(msg + "; did you mean: " + strings.Join(s, ", ") + "?")
		}
		return fmt.Errorf("%s (see '%s --help')", msg, c.CommandPath())
	}
	return err
}

// reUnknownCommand matches cobra's error for an unknown subcommand
// (args.go's legacyArgs); suggestions are made by execute instead.
var reUnknownCommand = regexp.MustCompile(`^unknown command "(.*)" for "(.*)"$`)

// oneLine folds a multi-line error (errors.Join) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

type globalFlags struct {
	home string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "glimpse",
		Short:         "Preview environments for every pull request, on your own infrastructure",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "state directory (default $GLIMPSE_HOME or ~/.glimpse)")
	// execute says "did you mean", on the same line.
	root.DisableSuggestions = true
	root.SuggestionsMinimumDistance = 2
	// One -o vocabulary: every command's -o is checked here, the same way.
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return checkOutputFlag(c) }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newServe(g), newUp(g), newDown(g), newList(g), newGC(g), newVersion(), newLogs(g), newStatus(g), newInit(), newOpen(g), newPlugins(g), newNotify())
	return root
}
