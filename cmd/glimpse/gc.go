package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/forge/githubloop"
	"github.com/glimpse-dev/glimpse/preview"
)

type gcFlags struct {
	apps   []string
	dir    string
	dryRun bool
	output string
	// githubRepo (owner/name) is where the PRs of the apps named by
	// --app and DIR are looked up; "" reads GITHUB_REPOSITORY.
	githubRepo string
	// githubRepoSet: githubRepo came from the flag (not the environment).
	githubRepoSet bool
	// blobGrace is the grace period of asset blob collection.
	blobGrace time.Duration
	// GitHub App credentials, instead of a token, for the closed-PR check.
	githubAppFlags
	// noExpire leaves expired previews alone (the daemon's scheduled gc
	// when its GitHub loop expires them); noGitHub skips the closed-PR
	// check (the scheduled gc names no apps).
	noExpire, noGitHub bool
}

func newGC(g *globalFlags) *cobra.Command {
	f := &gcFlags{}
	var yes bool
	c := &cobra.Command{
		Use:   "gc [DIR] [--app NAME]... [--yes] [-o json]",
		Short: "Take down expired previews and delete what no preview needs",
		Long: "gc is a dry run unless --yes: it says what it would remove, one line each with the\n" +
			"reason, and removes nothing.\n\n" +
			"It takes down the previews past their glimpse.yaml ttl (time since their last deploy,\n" +
			"read from their route), and, with a GitHub token (" + githubloop.EnvToken + " or GITHUB_TOKEN)\n" +
			"and --github-repo (or GITHUB_REPOSITORY), the previews of the apps named by --app or\n" +
			"DIR whose pull request is closed, or unknown to GitHub (orphans); a GitHub App\n" +
			"(--github-app-id and its key) does instead of a token. Without them it says\n" +
			"that closed pull requests were not checked. The daemon expires previews by the same rule.\n\n" +
			"It deletes the registry tags that no preview needs any more: pr-N-<commit> tags of\n" +
			"pull requests that have no preview, and src-<hash> build-cache tags whose image no\n" +
			"kept tag has. A tag whose image a function runs is never deleted. Apps examined: those\n" +
			"with a preview, those named with --app (or by --dir's glimpse.yaml), and every app the\n" +
			"registry lists when it has a catalog. A registry that refuses deletes is reported,\n" +
			"not an error. With DIR (or --dir), providers and an app come from DIR/glimpse.yaml;\n" +
			"otherwise the local stack.\n\n" +
			"When the asset store can collect (fs://, s3://), gc also deletes the asset blobs that no\n" +
			"manifest references and that are older than --blob-grace: a publish uploads its blobs\n" +
			"before it writes the manifest naming them, so the grace period must exceed the longest\n" +
			"publish. A blob a manifest references is never deleted.\n\n" +
			"With a database provider (providers.database, or GLIMPSE_POSTGRES_URL), gc also drops\n" +
			"the databases of previews that have neither a route nor a function.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if f.dir != "" {
					return preview.Errorf(preview.InvalidArgument, "give the app directory once: as DIR or as --dir, not both")
				}
				f.dir = args[0]
			}
			if yes && f.dryRun {
				return preview.Errorf(preview.InvalidArgument, "give --yes (act) or --dry-run (the default), not both")
			}
			f.dryRun = !yes
			f.githubRepoSet = cmd.Flags().Changed("github-repo")
			if f.blobGrace <= 0 {
				return preview.Errorf(preview.InvalidArgument, "--blob-grace must be positive, got %s: a publish running now uploads its blobs before the manifest that names them, and a grace of zero would delete them", f.blobGrace)
			}
			home, err := g.homeDir()
			if err != nil {
				return err
			}
			return runGC(cmd.Context(), home, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	c.Flags().StringArrayVar(&f.apps, "app", nil, "also examine this app's repository (repeatable)")
	c.Flags().StringVar(&f.dir, "dir", "", "read providers (and an app) from DIR/glimpse.yaml")
	c.Flags().BoolVar(&yes, "yes", false, "act: take previews down and delete (without it gc is a dry run)")
	c.Flags().BoolVar(&f.dryRun, "dry-run", false, "say what would be deleted, delete nothing (the default)")
	f.githubAppFlags.register(c.Flags())
	c.Flags().StringVar(&f.githubRepo, "github-repo", "", "look the pull requests of the named apps up in this repository (owner/name; default $GITHUB_REPOSITORY)")
	outputFlag(c, &f.output, "one line per tag")
	c.Flags().DurationVar(&f.blobGrace, "blob-grace", preview.DefaultBlobGrace, "keep unreferenced asset blobs younger than this")
	return c
}

// runGC runs garbage collection on the pipeline of home (or of f.dir's
// glimpse.yaml), printing the decisions to stdout and a summary to stderr.
func runGC(ctx context.Context, home string, f *gcFlags, stdout, stderr io.Writer) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	apps := append([]string(nil), f.apps...)
	for _, a := range apps {
		if err := preview.ValidateDNSLabel(a); err != nil {
			return preview.Errorf(preview.InvalidArgument, "--app %q: %v", a, err)
		}
	}
	var providers config.Providers
	if f.dir != "" {
		file, err := config.Load(f.dir)
		if err != nil {
			return err
		}
		providers = file.Providers
		apps = append(apps, file.App)
	}
	pl, err := openPipeline(ctx, home, providers)
	if err != nil {
		return err
	}
	var downs []gcPreview
	var downErr error
	if !f.noExpire {
		var pulls *pullChecker
		if !f.noGitHub {
			var note string
			if pulls, note, err = f.githubPulls(ctx, apps); err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(stderr, note)
			}
		}
		downs, downErr = expirePreviews(ctx, pl, time.Now(), pulls, f.dryRun)
	}
	rep, gcErr := pl.GC(ctx, preview.GCOptions{Apps: apps, DryRun: f.dryRun})
	blobs, blobErr := collectAssetBlobs(ctx, pl.Assets, f)
	rep.Blobs = blobs
	for _, w := range rep.Warnings {
		fmt.Fprintln(stderr, "warning: "+oneLine(w))
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			preview.GCReport
			Previews []gcPreview `json:"previews"`
		}{rep, downs}); err != nil {
			return err
		}
	} else {
		for _, d := range downs {
			fmt.Fprintln(stdout, d.line())
		}
	}
	if f.output != "json" && len(rep.Tags) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "APP\tTAG\tDIGEST\tACTION\tREASON")
		for _, t := range rep.Tags {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.App, t.Tag, shortDigest(t.Digest), t.Action, oneLine(t.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if f.dryRun {
		fmt.Fprintf(stderr, "gc (dry run): %d app(s), would delete %d tag(s), keep %d\n", len(rep.Apps), rep.Count(preview.GCDelete), rep.Count(preview.GCKeep))
	} else {
		fmt.Fprintf(stderr, "gc: %d app(s), deleted %d tag(s), kept %d", len(rep.Apps), rep.Count(preview.GCDeleted), rep.Count(preview.GCKeep))
		if n := rep.Count(preview.GCRefused); n > 0 {
			fmt.Fprintf(stderr, ", %d refused by the registry", n)
		}
		if n := rep.Count(preview.GCFailed); n > 0 {
			fmt.Fprintf(stderr, ", %d failed", n)
		}
		fmt.Fprintln(stderr)
	}
	fmt.Fprintln(stderr, previewSummary(downs, f.dryRun))
	if blobs != nil {
		fmt.Fprintln(stderr, blobSummary(*blobs, f.blobGrace))
	}
	if pl.Database != nil {
		fmt.Fprintln(stderr, databaseSummary(rep.Databases, f.dryRun))
	}
	if err := errors.Join(downErr, gcErr, blobErr); err != nil {
		return errors.New("gc incomplete (run it again to retry): " + oneLine(err.Error()))
	}
	return nil
}

// collectAssetBlobs runs the asset store's blob collection when it has
// one (preview.BlobCollector); nil stats and no error when it has not.
func collectAssetBlobs(ctx context.Context, store preview.AssetStore, f *gcFlags) (*preview.BlobCollectStats, error) {
	c, ok := store.(preview.BlobCollector)
	if !ok {
		return nil, nil
	}
	grace := f.blobGrace
	if grace == 0 {
		grace = preview.DefaultBlobGrace
	}
	st, err := c.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: grace, DryRun: f.dryRun})
	if preview.CodeOf(err) == preview.Unimplemented {
		return nil, nil
	}
	if err != nil {
		return &st, fmt.Errorf("asset blobs: %w", err)
	}
	return &st, nil
}

// blobSummary is the one-line report of an asset blob collection.
func blobSummary(st preview.BlobCollectStats, grace time.Duration) string {
	if grace == 0 {
		grace = preview.DefaultBlobGrace
	}
	verb := "deleted"
	if st.DryRun {
		verb = "would delete"
	}
	return fmt.Sprintf("gc: assets: %d blob(s), %s %d unreferenced (%d bytes), kept %d referenced and %d younger than %s",
		st.Blobs, verb, st.Deleted, st.DeletedBytes, st.Referenced, st.Young, grace)
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// databaseSummary is the one-line report of the databases gc dropped (or,
// in a dry run, would drop): those of previews that are gone.
func databaseSummary(dbs []preview.DatabaseStatus, dryRun bool) string {
	verb := "dropped"
	if dryRun {
		verb = "would drop"
	}
	names := make([]string, 0, len(dbs))
	for _, d := range dbs {
		names = append(names, d.Name)
	}
	if len(names) == 0 {
		return "gc: databases: none of a preview that is gone"
	}
	return fmt.Sprintf("gc: databases: %s %d of previews that are gone (%s)", verb, len(names), strings.Join(names, ", "))
}

// gcPreview is one preview gc takes down, or would in a dry run.
type gcPreview struct {
	App  string `json:"app"`
	PR   int    `json:"pr"`
	Host string `json:"host,omitempty"`
	// Action is "remove" (a dry run), "removed" or "failed".
	Action string `json:"action"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
}

// line is the preview's one line of gc's table output.
func (d gcPreview) line() string {
	verb := map[string]string{"remove": "would remove", "removed": "removed", "failed": "failed to remove"}[d.Action]
	s := fmt.Sprintf("%s %s #%d", verb, d.App, d.PR)
	if d.Host != "" {
		s += " (" + d.Host + ")"
	}
	s += ": " + d.Reason
	if d.Error != "" {
		s += ": " + oneLine(d.Error)
	}
	return s
}

// pullChecker says whether a preview's pull request is still open; nil
// when gc cannot know (no GitHub token or repository).
type pullChecker struct {
	apps map[string]bool // the apps of the repository
	pull func(ctx context.Context, n int) (githubloop.PullRequest, bool, error)
}

// githubPulls returns how gc learns which pull requests are closed: with
// a GitHub token and repository, through githubloop's client, for the
// named apps (a stack may hold apps of several repositories, whose PR
// numbers mean other pull requests). Without, a note for stderr.
func (f *gcFlags) githubPulls(ctx context.Context, apps []string) (*pullChecker, string, error) {
	gh := githubFromEnv(os.Getenv, f.githubRepo)
	app, err := f.appAuth()
	if err != nil {
		return nil, "", err
	}
	if gh.repo == "" || (gh.token == "" && app == nil) {
		return nil, "gc: previews of closed pull requests not checked: that needs a GitHub token (" + githubloop.EnvToken + " or GITHUB_TOKEN) or --github-app-id, and --github-repo (or GITHUB_REPOSITORY)", nil
	}
	if len(apps) == 0 {
		if f.githubRepoSet {
			return nil, "", preview.Errorf(preview.InvalidArgument, "--github-repo needs the app(s) of that repository: give DIR (with its glimpse.yaml) or --app NAME")
		}
		return nil, "gc: previews of closed pull requests not checked: name the app of " + gh.repo + " with DIR or --app", nil
	}
	var rep *githubloop.GitHubReporter
	if app != nil {
		rep, err = githubloop.NewAppReporter(gh.repo, app, gh.apiURL)
	} else {
		rep, err = githubloop.NewGitHubReporter(gh.repo, gh.token, gh.apiURL)
	}
	if err != nil {
		return nil, "", preview.Errorf(preview.InvalidArgument, "--github-repo: %v", err)
	}
	// GitHub answers 404 for a pull request it does not know, which makes
	// a preview an orphan, but also for every pull request of a repository
	// that does not exist or that these credentials cannot see: list the
	// open ones first, so a mistyped --github-repo is an error, not the
	// removal of every preview of the apps.
	if _, err := rep.OpenPulls(ctx); err != nil {
		return nil, "", preview.WithCode(preview.CodeOf(err), fmt.Errorf("gc: listing the pull requests of %s (is --github-repo right, and may these credentials read it?): %w", gh.repo, err))
	}
	c := &pullChecker{apps: map[string]bool{}, pull: rep.Pull}
	for _, a := range apps {
		c.apps[a] = true
	}
	return c, "", nil
}

// expirePreviews takes down (unless dryRun) the previews that expired at
// now by preview.Lifetime.Expired (their ttl; gc has no stale-after) and,
// with pulls, those of the named apps whose pull request is closed or
// unknown to GitHub. It returns one gcPreview per preview, sorted by app
// and PR. Each Down is idempotent, so a failed one is retried by the next
// gc; the failures are joined, the other previews still go.
func expirePreviews(ctx context.Context, pl *preview.Pipeline, now time.Time, pulls *pullChecker, dryRun bool) ([]gcPreview, error) {
	pvs, err := pl.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []gcPreview
	var errs []error
	for _, pv := range pvs {
		reason := ""
		if exp, ok := pv.Lifetime().Expired(now, 0); ok {
			reason = exp.String()
		} else if pulls != nil && pulls.apps[pv.App] {
			pr, open, err := pulls.pull(ctx, pv.PR)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s #%d: reading the pull request: %w", pv.App, pv.PR, err))
				continue
			case open:
				continue
			case pr.Number == 0:
				reason = "orphan: GitHub does not know pull request #" + fmt.Sprint(pv.PR)
			default:
				reason = "pull request closed"
			}
		}
		if reason == "" {
			continue
		}
		d := gcPreview{App: pv.App, PR: pv.PR, Host: pv.Host, Action: "remove", Reason: reason}
		if !dryRun {
			if err := pl.Down(ctx, pv.App, pv.PR); err != nil {
				d.Action, d.Error = "failed", err.Error()
				errs = append(errs, fmt.Errorf("%s #%d: %w", pv.App, pv.PR, err))
			} else {
				d.Action = "removed"
			}
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// previewSummary is the one-line report of the previews gc took down.
func previewSummary(downs []gcPreview, dryRun bool) string {
	if len(downs) == 0 {
		return "gc: previews: none expired or closed"
	}
	if dryRun {
		return fmt.Sprintf("gc (dry run): previews: would take down %d (run with --yes to act)", len(downs))
	}
	failed := 0
	for _, d := range downs {
		if d.Action == "failed" {
			failed++
		}
	}
	return fmt.Sprintf("gc: previews: took down %d, %d failed", len(downs)-failed, failed)
}
