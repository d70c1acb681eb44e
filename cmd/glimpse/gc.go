package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/config"
	"github.com/glimpse-dev/glimpse/preview"
)

type gcFlags struct {
	apps   []string
	dir    string
	dryRun bool
	output string
	// blobGrace is the grace period of asset blob collection.
	blobGrace time.Duration
}

func newGC(g *globalFlags) *cobra.Command {
	f := &gcFlags{}
	c := &cobra.Command{
		Use:   "gc [DIR] [--app NAME]... [--dry-run] [-o json]",
		Short: "Delete the image tags of previews that are gone",
		Long: "gc deletes the registry tags that no preview needs any more: pr-N-<commit> tags of\n" +
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
	c.Flags().BoolVar(&f.dryRun, "dry-run", false, "say what would be deleted, delete nothing")
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
	rep, gcErr := pl.GC(ctx, preview.GCOptions{Apps: apps, DryRun: f.dryRun})
	blobs, blobErr := collectAssetBlobs(ctx, pl.Assets, f)
	rep.Blobs = blobs
	for _, w := range rep.Warnings {
		fmt.Fprintln(stderr, "warning: "+oneLine(w))
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if len(rep.Tags) > 0 {
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
	if blobs != nil {
		fmt.Fprintln(stderr, blobSummary(*blobs, f.blobGrace))
	}
	if pl.Database != nil {
		fmt.Fprintln(stderr, databaseSummary(rep.Databases, f.dryRun))
	}
	if err := errors.Join(gcErr, blobErr); err != nil {
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
