package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

func newOpen(g *globalFlags) *cobra.Command {
	var pr string
	var printOnly bool
	c := &cobra.Command{
		Use:   "open [DIR] --pr N [--print]",
		Short: "Open a preview in the browser",
		Long: "open looks up the preview of DIR's app (default .) for pull request N and opens its\n" +
			"URL with $BROWSER, xdg-open or open. With --print, or when none of them is there, it\n" +
			"prints the URL instead.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parsePR(pr)
			if err != nil {
				return err
			}
			file, err := config.Load(dirArg(args))
			if err != nil {
				return err
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			pl, err := openPipeline(cmd.Context(), home, file.Providers)
			if err != nil {
				return err
			}
			list, err := pl.List(cmd.Context(), file.App)
			if err != nil {
				return err
			}
			var url string
			for _, p := range list {
				if p.PR == n && p.URL != "" {
					url = p.URL
				}
			}
			if url == "" {
				return preview.Errorf(preview.NotFound, "app %s has no preview for pull request #%d ('glimpse ls' lists the previews)", file.App, n)
			}
			if !printOnly {
				if opener := browserCommand(); opener != nil {
					c := exec.Command(opener[0], append(opener[1:], url)...)
					if err := c.Start(); err == nil {
						go c.Wait()
						fmt.Fprintln(cmd.ErrOrStderr(), "opening "+url)
						return nil
					}
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), url)
			return nil
		},
	}
	c.Flags().StringVar(&pr, "pr", "", "pull request number (required)")
	c.Flags().BoolVar(&printOnly, "print", false, "print the URL instead of opening it")
	return c
}

// browserCommand is the command that opens a URL here: $BROWSER, else
// xdg-open (Linux) or open (macOS) when on PATH; nil when there is none.
func browserCommand() []string {
	if b := os.Getenv("BROWSER"); b != "" {
		return []string{b}
	}
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if p, err := exec.LookPath(name); err == nil {
		return []string{p}
	}
	return nil
}
