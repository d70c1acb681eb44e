package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/glimpse-dev/glimpse/daemon"
	"github.com/glimpse-dev/glimpse/preview"
)

// previewStatus is what `glimpse status` reports of one preview: every
// resource, read from the providers. A resource that does not exist is
// null in JSON.
type previewStatus struct {
	App    string         `json:"app"`
	PR     int            `json:"pr"`
	Commit string         `json:"commit,omitempty"`
	URL    string         `json:"url,omitempty"`
	Status preview.Status `json:"status"`
	// LastRequest is the last activity the edge saw; nil when unknown.
	LastRequest *time.Time `json:"lastRequest,omitempty"`
	// Idle is the idle timeout in force and its source (see ls); nil
	// when unknown.
	Idle *preview.IdleTimeout `json:"idle,omitempty"`

	// LastDeploy is the last Up's result as its route records it; nil
	// without a route.
	LastDeploy *deployStatus `json:"lastDeploy"`
	// DaemonDeploy is the last Up the local daemon ran of the preview
	// (the GitHub loop's), with its recent events; absent otherwise.
	DaemonDeploy *daemon.DeployRecord `json:"daemonDeploy,omitempty"`

	Image    *imageStatus    `json:"image"`
	Function *functionStatus `json:"function"`
	Route    *routeStatus    `json:"route"`
	Assets   *assetsStatus   `json:"assets"`
	// DNS is null when no DNS provider is configured.
	DNS *dnsStatus `json:"dns"`
}

// deployStatus is the last Up that claimed the preview's route: "live"
// (it switched the route), "in progress" (claimed, not switched, no
// failure recorded) or "failed" with the reason it recorded
// (preview.Route.Failure).
type deployStatus struct {
	Commit     string `json:"commit,omitempty"`
	Generation int64  `json:"generation"`
	Result     string `json:"result"`
	Reason     string `json:"reason,omitempty"`
}

// lastDeploy reads the last Up's result from its route.
func lastDeploy(r preview.Route) *deployStatus {
	d := &deployStatus{Commit: r.ClaimedCommit, Generation: r.Generation, Result: "live"}
	switch {
	case r.Deleted:
		return nil
	case r.Generation > r.Served && r.Failure != "":
		d.Result, d.Reason = "failed", r.Failure
	case r.Generation > r.Served:
		d.Result = "in progress"
	}
	return d
}

type imageStatus struct {
	Ref string `json:"ref"`
}

type functionStatus struct {
	Name              string     `json:"name"`
	Replicas          int        `json:"replicas"`
	AvailableReplicas int        `json:"availableReplicas"`
	CreatedAt         *time.Time `json:"createdAt,omitempty"`
	StartedAt         *time.Time `json:"startedAt,omitempty"`
	Restarts          int        `json:"restarts"`
	LastError         string     `json:"lastError,omitempty"`
	Generation        int64      `json:"generation,omitempty"`
}

type routeStatus struct {
	Host          string   `json:"host"`
	Served        int64    `json:"servedGeneration"`
	Claimed       int64    `json:"claimedGeneration"`
	ClaimedCommit string   `json:"claimedCommit,omitempty"`
	AssetPrefix   string   `json:"assetPrefix,omitempty"`
	Function      string   `json:"function,omitempty"`
	FunctionPaths []string `json:"functionPaths,omitempty"`
	Deleted       bool     `json:"deleted,omitempty"`
}

type assetsStatus struct {
	Prefix string `json:"prefix"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	// Missing is true when the route names a manifest the store lacks.
	Missing bool `json:"missing,omitempty"`
}

type dnsStatus struct {
	Host   string `json:"host"`
	Record bool   `json:"record"`
}

func newStatus(g *globalFlags) *cobra.Command {
	var prFlag, app, output string
	c := &cobra.Command{
		Use:   "status [DIR] --pr N [-o json]",
		Short: "Show every resource of a pull request's preview",
		Long: "status shows the preview's state and its resources as the providers report\n" +
			"them: the image, the function (replicas, last start, crashes), the route\n" +
			"(host, served and claimed generations, asset manifest), the last deploy's\n" +
			"result (live, in progress, or failed with its reason), the asset manifest\n" +
			"and the DNS record when a DNS provider is configured, and the idle timeout in\n" +
			"force with its source (glimpse.yaml beats serve --idle-after beats the default).\n" +
			"The app name comes from\n" +
			"DIR/glimpse.yaml (default .), or from --app.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pr, err := parsePR(prFlag)
			if err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
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
			st, err := readStatus(cmd.Context(), pl, app, pr)
			if err != nil {
				return err
			}
			st.DaemonDeploy = daemonDeploy(cmd.Context(), home, providers, app, pr)
			if def := daemonIdle(cmd.Context(), home, providers); def != nil && st.Function != nil {
				st.Idle = preview.IdleOr(st.Idle, *def)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	c.Flags().StringVar(&prFlag, "pr", "", "pull request number (required)")
	c.Flags().StringVar(&app, "app", "", "app name, when there is no glimpse.yaml at hand")
	outputFlag(c, &output, "one resource a line")
	return c
}

// lookupPreview reads the preview's route (nil when there is none) and
// function (nil when there is none; the route's function when the route
// names one) from pl's router and runtime. It only reads.
func lookupPreview(ctx context.Context, pl *preview.Pipeline, app string, pr int) (*preview.Route, *preview.FunctionStatus, error) {
	var route *preview.Route
	fnName := preview.FunctionName(app, pr)
	if pl.Router != nil {
		r, err := pl.Router.Route(ctx, preview.Host(app, pr, pl.BaseDomain))
		switch {
		case err == nil:
			route = &r
			if r.Function != "" {
				fnName = r.Function
			}
		case !preview.IsNotFound(err):
			return nil, nil, fmt.Errorf("read route: %w", err)
		}
	}
	if pl.Runtime != nil {
		f, err := pl.Runtime.Get(ctx, fnName)
		switch {
		case err == nil:
			return route, &f, nil
		case !preview.IsNotFound(err):
			return nil, nil, fmt.Errorf("read function: %w", err)
		}
	}
	return route, nil, nil
}

// readStatus reads the preview's resources from pl's providers. A preview
// of which nothing exists is NotFound.
func readStatus(ctx context.Context, pl *preview.Pipeline, app string, pr int) (previewStatus, error) {
	st := previewStatus{App: app, PR: pr, Status: preview.StatusPartial}
	host := preview.Host(app, pr, pl.BaseDomain)
	r, f, err := lookupPreview(ctx, pl, app, pr)
	if err != nil {
		return st, err
	}
	if r != nil {
		st.Route = &routeStatus{Host: r.Host, Served: r.Served, Claimed: r.Generation, ClaimedCommit: r.ClaimedCommit,
			AssetPrefix: r.AssetPrefix, Function: r.Function, FunctionPaths: r.FunctionPaths, Deleted: r.Deleted}
		st.LastDeploy = lastDeploy(*r)
	}
	if f != nil {
		fs := &functionStatus{Name: f.Name, Replicas: f.Replicas, AvailableReplicas: f.AvailableReplicas,
			Restarts: f.Restarts, LastError: f.LastError, Generation: preview.GenerationOf(f.Annotations)}
		if !f.CreatedAt.IsZero() {
			fs.CreatedAt = &f.CreatedAt
		}
		if !f.StartedAt.IsZero() {
			fs.StartedAt = &f.StartedAt
		}
		st.Function = fs
		if f.Image != "" {
			st.Image = &imageStatus{Ref: f.Image}
		}
		st.Commit = f.Labels[preview.LabelCommit]
	}
	if st.Route != nil && st.Route.AssetPrefix != "" && pl.Assets != nil {
		as := &assetsStatus{Prefix: st.Route.AssetPrefix}
		m, err := pl.Assets.Manifest(ctx, st.Route.AssetPrefix)
		switch {
		case err == nil:
			as.Files = len(m.Files)
			for _, f := range m.Files {
				as.Bytes += f.Size
			}
		case preview.IsNotFound(err):
			as.Missing = true
		default:
			return st, fmt.Errorf("read asset manifest: %w", err)
		}
		st.Assets = as
	}
	if pl.DNS != nil {
		hosts, err := pl.DNS.Hosts(ctx, preview.Selector(pl.Owner, app, pr))
		if err != nil {
			return st, fmt.Errorf("read DNS records: %w", err)
		}
		st.DNS = &dnsStatus{Host: host, Record: slices.Contains(hosts, host)}
	}
	if st.Route == nil && st.Function == nil {
		return st, preview.Errorf(preview.NotFound, "%s: pull request #%d has no preview (see 'glimpse ls')", app, pr)
	}
	if st.Route != nil && st.Route.Deleted {
		st.Status = "removed"
	}
	list, err := pl.List(ctx, app)
	if err != nil {
		return st, err
	}
	for _, p := range list {
		if p.PR == pr {
			st.Status, st.URL, st.LastRequest, st.Idle = p.Status, p.URL, p.LastRequest, p.Idle
			if p.Commit != "" {
				st.Commit = p.Commit
			}
		}
	}
	return st, nil
}

// maxStatusEvents is how many of the daemon's deploy events the status
// table shows (the last ones; -o json has them all).
const maxStatusEvents = 12

func printStatus(w io.Writer, st previewStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.RFC3339) + " (" + time.Since(*t).Round(time.Second).String() + " ago)"
	}
	row("preview", "%s #%d", st.App, st.PR)
	row("status", "%s", st.Status)
	if st.Commit != "" {
		row("commit", "%s", st.Commit)
	}
	if st.URL != "" {
		row("url", "%s", st.URL)
	}
	if d := st.LastDeploy; d != nil {
		line := d.Result
		if d.Commit != "" {
			line += " (commit " + d.Commit + ")"
		}
		if d.Reason != "" {
			line += ": " + oneLine(d.Reason)
		}
		row("last deploy", "%s", line)
	}
	if d := st.DaemonDeploy; d != nil {
		line := fmt.Sprintf("%s of %s by the daemon, started %s", d.Result, d.Commit, ts(&d.Started))
		if d.Error != "" {
			line += ": " + oneLine(d.Error)
		}
		row("recent events", "%s", line)
		evs := d.Events
		if len(evs) > maxStatusEvents {
			evs = evs[len(evs)-maxStatusEvents:]
		}
		for _, e := range evs {
			row("", "%s  %-8s %-9s %s", e.Time.Local().Format(time.TimeOnly), e.Step, e.State, oneLine(e.Message))
		}
	}
	row("last request", "%s", ts(st.LastRequest))
	if st.Function != nil {
		row("idle after", "%s", idleColumn(st.Idle))
	}
	if st.Image != nil {
		row("image", "%s", st.Image.Ref)
	} else {
		row("image", "-")
	}
	if f := st.Function; f != nil {
		row("function", "%s  replicas %d, available %d, restarts %d", f.Name, f.Replicas, f.AvailableReplicas, f.Restarts)
		row("  created", "%s", ts(f.CreatedAt))
		row("  last start", "%s", ts(f.StartedAt))
		if f.LastError != "" {
			row("  last error", "%s", oneLine(f.LastError))
		}
	} else {
		row("function", "-")
	}
	if r := st.Route; r != nil {
		row("route", "%s  served generation %d, claimed %d%s", r.Host, r.Served, r.Claimed, map[bool]string{true: " (removed: a tombstone)"}[r.Deleted])
		if len(r.FunctionPaths) > 0 {
			row("  function paths", "%s", strings.Join(r.FunctionPaths, " "))
		}
	} else {
		row("route", "-")
	}
	if a := st.Assets; a != nil {
		if a.Missing {
			row("assets", "%s  manifest missing", a.Prefix)
		} else {
			row("assets", "%s  %d files, %d bytes", a.Prefix, a.Files, a.Bytes)
		}
	} else {
		row("assets", "-")
	}
	if d := st.DNS; d != nil {
		row("dns", "%s  record %s", d.Host, map[bool]string{true: "present", false: "missing"}[d.Record])
	} else {
		row("dns", "not configured")
	}
	return tw.Flush()
}
