package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

type upFlags struct {
	pr           string
	commit       string
	output       string
	generation   string
	force        bool
	verifyAssets bool
}

func newUp(g *globalFlags) *cobra.Command {
	f := &upFlags{}
	c := &cobra.Command{
		Use:   "up [DIR] --pr N [--commit SHA]",
		Short: "Build, upload, deploy and route the preview of a pull request",
		Long: "up runs the preview pipeline for the app in DIR (default .): it builds and pushes\n" +
			"the function image while it uploads the static files, deploys the function and\n" +
			"routes the preview host. Progress goes to stderr; the URL is the last line of stdout.\n" +
			"Without --commit, the commit is DIR's git HEAD, or a hash of the app's files.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUp(cmd.Context(), g, f, dirArg(args), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	c.Flags().StringVar(&f.pr, "pr", "", "pull request number (required)")
	c.Flags().StringVar(&f.commit, "commit", "", "commit SHA (default: git HEAD of DIR, or a hash of its files)")
	outputFlag(c, &f.output, "the URL on stdout")
	c.Flags().StringVar(&f.generation, "generation", "", "order of this up among the ups of the pull request, such as $GITHUB_RUN_NUMBER;\n"+
		"an older one than the preview's changes nothing (default: $GLIMPSE_GENERATION, else the next one)")
	c.Flags().BoolVar(&f.force, "force", false, "deploy even when --generation is older than the preview's")
	c.Flags().BoolVar(&f.verifyAssets, "verify-assets", false, "look every asset blob up in the store and send the missing ones, instead of trusting\n"+
		"the served manifest's (repairs a blob deleted behind the store's back; one listing per 1,000 blobs)")
	return c
}

// parseGeneration reads --generation, or GLIMPSE_GENERATION when the flag
// is empty; "" is 0 (the next generation).
func parseGeneration(flag string) (int64, error) {
	s, from := flag, "--generation"
	if s == "" {
		s, from = os.Getenv("GLIMPSE_GENERATION"), "GLIMPSE_GENERATION"
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "%s must be a positive integer such as a CI run number, got %q", from, s)
	}
	return n, nil
}

func dirArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return "."
}

// parsePR turns the --pr flag into a positive number, with a one-line error.
func parsePR(s string) (int, error) {
	if s == "" {
		return 0, preview.Errorf(preview.InvalidArgument, "--pr is required: the pull request number, such as --pr 42")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, preview.Errorf(preview.InvalidArgument, "--pr must be a positive integer, got %q", s)
	}
	return n, nil
}

// Output formats: every command with -o takes the same two, checked
// once for all of them by the root's PersistentPreRunE (checkOutputFlag).
const (
	outputTable = "table"
	outputJSON  = "json"
)

// outputFlag adds -o/--output to c; what says what table shows.
func outputFlag(c *cobra.Command, p *string, what string) {
	c.Flags().StringVarP(p, "output", "o", "", "output format: table ("+what+", the default) or json")
}

// checkOutput refuses an -o value other than table or json ("" is table).
func checkOutput(o string) error {
	if o != "" && o != outputJSON && o != outputTable {
		return preview.Errorf(preview.InvalidArgument, "--output must be json or table, got %q", o)
	}
	return nil
}

// checkOutputFlag checks the -o flag of any command that has one.
func checkOutputFlag(c *cobra.Command) error {
	if f := c.Flags().Lookup("output"); f != nil {
		return checkOutput(f.Value.String())
	}
	return nil
}

func runUp(ctx context.Context, g *globalFlags, f *upFlags, dir string, stdout, stderr io.Writer) error {
	pr, err := parsePR(f.pr)
	if err != nil {
		return err
	}
	if err := checkOutput(f.output); err != nil {
		return err
	}
	gen, err := parseGeneration(f.generation)
	if err != nil {
		return err
	}
	if f.commit != "" {
		if err := preview.ValidateCommit(f.commit); err != nil {
			return err
		}
	}
	file, err := config.Load(dir)
	if err != nil {
		return err
	}
	if file.StackFunction != nil {
		for _, w := range file.StackFunction.Warnings(file.Providers.Builder) {
			fmt.Fprintln(stderr, "warning: "+w)
		}
	}
	commit := f.commit
	if commit == "" {
		if commit, err = defaultCommit(dir, &file.Spec); err != nil {
			return err
		}
	}
	home, err := g.homeDir()
	if err != nil {
		return err
	}
	pl, err := openPipeline(ctx, home, file.Providers)
	if err != nil {
		return err
	}
	prog := stderrProgress(stderr)
	defer prog.Close()
	pl.OnEvent = prog.Event
	fmt.Fprintf(stderr, "%s: pull request #%d at %s\n", file.App, pr, shortCommit(commit))
	start := time.Now()
	pv, err := pl.Up(ctx, preview.UpRequest{Dir: dir, Spec: file.Spec, PR: pr, Commit: commit, Generation: gen, Force: f.force, VerifyAssets: f.verifyAssets})
	prog.Close()
	if err != nil {
		if pv.URL != "" {
			// The preview is live (the CDN purge after the route switch
			// failed): say where, and still fail.
			fmt.Fprintf(stderr, "live at %s, but: %v\n", pv.URL, oneLine(err.Error()))
		}
		return err
	}
	fmt.Fprintf(stderr, "ready in %s\n", time.Since(start).Round(time.Millisecond))
	if f.output == "json" {
		return json.NewEncoder(stdout).Encode(pv)
	}
	fmt.Fprintln(stdout, pv.URL)
	return nil
}

func shortCommit(c string) string {
	if len(c) > preview.ShortCommitLen {
		return c[:preview.ShortCommitLen]
	}
	return c
}

// defaultCommit is DIR's git HEAD when DIR is in a git work tree, else a
// hash of the app's files (so a changed file gives a new "commit").
func defaultCommit(dir string, spec *preview.Spec) (string, error) {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err == nil {
		if c := strings.TrimSpace(string(out)); preview.ValidateCommit(c) == nil {
			return c, nil
		}
	}
	h := sha256.New()
	for _, sub := range spec.Dirs() {
		m, err := preview.ScanAssets(filepath.Join(dir, sub))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %s\n", sub, m.Digest())
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
