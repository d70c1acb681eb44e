// Command glimpse gives every pull request its own preview environment.
//
//	glimpse serve                      start the local stack (registry, runtime, edge)
//	glimpse up [DIR] --pr N            build, upload, deploy and route a preview
//	glimpse down [DIR] --pr N          remove a preview and everything it created
//	glimpse ls [-o json]               list previews
//	glimpse status [DIR] --pr N        every resource of a preview
//	glimpse logs [DIR] --pr N [-f]     a preview's function logs
//	glimpse gc [--dry-run]             delete image tags of previews that are gone
//	glimpse version                    print the version (also --version)
//
// Errors are printed as one line on stderr with a non-zero exit status.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	plugin.Shutdown() // no plugin process outlives the command
	if err != nil {
		fmt.Fprintln(os.Stderr, "glimpse: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

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
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newServe(g), newUp(g), newDown(g), newList(g), newGC(g), newVersion(), newLogs(g), newStatus(g), newInit(), newOpen(g), newPlugins(g))
	return root
}
