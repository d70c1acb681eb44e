package plugin

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// The host-side adapters: each implements a preview interface by calling
// the plugin, and the optional interfaces only when the plugin serves them,
// so the Pipeline's type assertions see what the plugin really has. Each
// call starts the plugin when it is not running (see Client).

// Builder returns the plugin's Builder, or Unimplemented when it serves
// none. Progress lines stream back as the plugin's builder writes them.
func (c *Client) Builder(ctx context.Context) (preview.Builder, error) {
	if _, err := c.need(ctx, IfaceBuilder); err != nil {
		return nil, err
	}
	return builderClient{c}, nil
}

type builderClient struct{ c *Client }

func (b builderClient) Build(ctx context.Context, req preview.BuildRequest) (preview.BuildResult, error) {
	return do(ctx, b.c, func(s *session) (preview.BuildResult, error) {
		stream, err := pb.NewBuilderClient(s.cc).Build(ctx, &pb.BuildRequest{
			Target:     &pb.Target{App: req.Target.App, Pr: int64(req.Target.PR), Commit: req.Target.Commit},
			SourceDir:  req.SourceDir,
			Repository: req.Repository,
			Tag:        req.Tag,
			Labels:     labelsOut(req.Labels),
			Progress:   req.Progress != nil,
		})
		if err != nil {
			return preview.BuildResult{}, err
		}
		for {
			ev, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return preview.BuildResult{}, preview.Errorf(preview.Internal, "the build ended without a result")
			}
			if err != nil {
				return preview.BuildResult{}, err
			}
			if r := ev.GetResult(); r != nil {
				return preview.BuildResult{Image: r.Image, Digest: r.Digest, SourceHash: r.SourceHash, Reused: r.Reused}, nil
			}
			if req.Progress != nil {
				req.Progress(ev.GetProgress())
			}
		}
	})
}

// Registry returns the plugin's Registry, with AppLister and
// ManifestDeleter when the plugin serves them, or Unimplemented. The
// Repository answers of the plugin are asked once per app and kept, since
// Repository does no I/O and cannot fail.
func (c *Client) Registry(ctx context.Context) (preview.Registry, error) {
	info, err := c.need(ctx, IfaceRegistry)
	if err != nil {
		return nil, err
	}
	r := &registryClient{c: c}
	al, md := info.Serves(IfaceAppLister), info.Serves(IfaceManifestDeleter)
	switch {
	case al && md:
		return struct {
			*registryClient
			appLister
			manifestDeleter
		}{r, appLister{r}, manifestDeleter{r}}, nil
	case al:
		return struct {
			*registryClient
			appLister
		}{r, appLister{r}}, nil
	case md:
		return struct {
			*registryClient
			manifestDeleter
		}{r, manifestDeleter{r}}, nil
	}
	return r, nil
}

type registryClient struct {
	c     *Client
	repos sync.Map // app -> repository
}

// Repository asks the plugin once per app; as the interface cannot report
// an error, a failed call yields "" (which every caller rejects as a
// repository) and is asked again next time.
func (r *registryClient) Repository(app string) string {
	if repo, ok := r.repos.Load(app); ok {
		return repo.(string)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := do(ctx, r.c, func(s *session) (*pb.RepositoryResponse, error) {
		return pb.NewRegistryClient(s.cc).Repository(ctx, &pb.RepositoryRequest{App: app})
	})
	if err != nil {
		return ""
	}
	r.repos.Store(app, resp.Repository)
	return resp.Repository
}

func (r *registryClient) Resolve(ctx context.Context, ref string) (string, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.ResolveResponse, error) {
		return pb.NewRegistryClient(s.cc).Resolve(ctx, &pb.ResolveRequest{Ref: ref})
	})
	return resp.GetDigest(), err
}

func (r *registryClient) Tags(ctx context.Context, app string) ([]string, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.TagsResponse, error) {
		return pb.NewRegistryClient(s.cc).Tags(ctx, &pb.TagsRequest{App: app})
	})
	return resp.GetTags(), err
}

func (r *registryClient) DeleteTag(ctx context.Context, app, tag string) error {
	_, err := do(ctx, r.c, func(s *session) (*pb.DeleteTagResponse, error) {
		return pb.NewRegistryClient(s.cc).DeleteTag(ctx, &pb.DeleteTagRequest{App: app, Tag: tag})
	})
	return err
}

type appLister struct{ r *registryClient }

func (a appLister) Apps(ctx context.Context) ([]string, error) {
	resp, err := do(ctx, a.r.c, func(s *session) (*pb.AppsResponse, error) {
		return pb.NewRegistryClient(s.cc).Apps(ctx, &pb.AppsRequest{})
	})
	return resp.GetApps(), err
}

type manifestDeleter struct{ r *registryClient }

func (m manifestDeleter) DeleteManifest(ctx context.Context, app, digest string) error {
	_, err := do(ctx, m.r.c, func(s *session) (*pb.DeleteManifestResponse, error) {
		return pb.NewRegistryClient(s.cc).DeleteManifest(ctx, &pb.DeleteManifestRequest{App: app, Digest: digest})
	})
	return err
}

// Runtime returns the plugin's FunctionRuntime, with GenerationRemover and
// LogReader when the plugin serves them, or Unimplemented.
func (c *Client) Runtime(ctx context.Context) (preview.FunctionRuntime, error) {
	info, err := c.need(ctx, IfaceFunctionRuntime)
	if err != nil {
		return nil, err
	}
	r := &runtimeClient{c: c}
	gr, lr := info.Serves(IfaceGenerationRemover), info.Serves(IfaceLogReader)
	switch {
	case gr && lr:
		return struct {
			*runtimeClient
			remover
			logReader
		}{r, remover{r}, logReader{r}}, nil
	case gr:
		return struct {
			*runtimeClient
			remover
		}{r, remover{r}}, nil
	case lr:
		return struct {
			*runtimeClient
			logReader
		}{r, logReader{r}}, nil
	}
	return r, nil
}

type runtimeClient struct{ c *Client }

func (r *runtimeClient) Apply(ctx context.Context, fn preview.Function) error {
	_, err := do(ctx, r.c, func(s *session) (*pb.ApplyResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).Apply(ctx, &pb.ApplyRequest{Function: functionOut(fn)})
	})
	return err
}

func (r *runtimeClient) Get(ctx context.Context, name string) (preview.FunctionStatus, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.GetFunctionResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).Get(ctx, &pb.GetFunctionRequest{Name: name})
	})
	if err != nil {
		return preview.FunctionStatus{}, err
	}
	return statusIn(resp.Status), nil
}

func (r *runtimeClient) List(ctx context.Context, selector preview.Labels) ([]preview.FunctionStatus, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.ListFunctionsResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).List(ctx, &pb.ListFunctionsRequest{Selector: labelsOut(selector)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]preview.FunctionStatus, len(resp.Functions))
	for i, f := range resp.Functions {
		out[i] = statusIn(f)
	}
	return out, nil
}

func (r *runtimeClient) Scale(ctx context.Context, name string, replicas int) (int, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.ScaleResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).Scale(ctx, &pb.ScaleRequest{Name: name, Replicas: int64(replicas)})
	})
	return int(resp.GetReplicas()), err
}

func (r *runtimeClient) Remove(ctx context.Context, name string) error {
	_, err := do(ctx, r.c, func(s *session) (*pb.RemoveFunctionResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).Remove(ctx, &pb.RemoveFunctionRequest{Name: name})
	})
	return err
}

type remover struct{ r *runtimeClient }

func (g remover) RemoveOlder(ctx context.Context, name string, below int64) (bool, error) {
	resp, err := do(ctx, g.r.c, func(s *session) (*pb.RemoveOlderResponse, error) {
		return pb.NewFunctionRuntimeClient(s.cc).RemoveOlder(ctx, &pb.RemoveOlderRequest{Name: name, Below: below})
	})
	return resp.GetRemoved(), err
}

type logReader struct{ r *runtimeClient }

func (l logReader) Logs(ctx context.Context, name string, opts preview.LogOptions, fn func(preview.LogLine) error) error {
	var fnErr error
	_, err := do(ctx, l.r.c, func(s *session) (struct{}, error) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := pb.NewFunctionRuntimeClient(s.cc).Logs(sctx, &pb.LogsRequest{
			Name: name, SinceUnixNano: unixNano(opts.Since), Tail: int64(opts.Tail), Follow: opts.Follow,
		})
		if err != nil {
			return struct{}{}, err
		}
		for {
			line, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return struct{}{}, nil
			}
			if err != nil {
				return struct{}{}, err
			}
			if err := fn(preview.LogLine{Function: line.Function, Instance: line.Instance, Time: fromUnixNano(line.TimeUnixNano), Text: line.Text}); err != nil {
				fnErr = err
				return struct{}{}, nil
			}
		}
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Assets returns the plugin's AssetStore, with BlobCollector when the
// plugin serves it, or Unimplemented. Publish sends only the files the
// plugin's store asks for, in chunks, never whole in memory; Open streams
// the blob in chunks as the caller reads.
func (c *Client) Assets(ctx context.Context) (preview.AssetStore, error) {
	info, err := c.need(ctx, IfaceAssetStore)
	if err != nil {
		return nil, err
	}
	a := &assetClient{c: c}
	if info.Serves(IfaceBlobCollector) {
		return struct {
			*assetClient
			blobCollector
		}{a, blobCollector{a}}, nil
	}
	return a, nil
}

type assetClient struct{ c *Client }

func (a *assetClient) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	return do(ctx, a.c, func(s *session) (preview.PublishStats, error) {
		id, files := s.filesBroker()
		token, release := files.register(open)
		defer release()
		resp, err := pb.NewAssetStoreClient(s.cc).Publish(ctx, &pb.PublishRequest{
			Prefix: prefix, Manifest: manifestOut(m), Labels: labelsOut(labels), FilesBrokerId: id, FilesToken: token,
		})
		if err != nil {
			return preview.PublishStats{}, err
		}
		return preview.PublishStats{Files: int(resp.Files), Uploaded: int(resp.Uploaded), UploadedBytes: resp.UploadedBytes, Reused: int(resp.Reused), Unchanged: resp.Unchanged}, nil
	})
}

func (a *assetClient) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	resp, err := do(ctx, a.c, func(s *session) (*pb.ManifestResponse, error) {
		return pb.NewAssetStoreClient(s.cc).Manifest(ctx, &pb.ManifestRequest{Prefix: prefix})
	})
	if err != nil {
		return preview.Manifest{}, err
	}
	return manifestIn(resp.Manifest), nil
}

func (a *assetClient) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	s, err := a.c.session(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := openStream(ctx, a.c.name, func(ctx context.Context) (chunkStream, error) {
		return pb.NewAssetStoreClient(s.cc).Open(ctx, &pb.OpenBlobRequest{Digest: digest})
	})
	if err != nil && preview.CodeOf(err) == preview.Unavailable && s.done.Err() != nil {
		a.c.lost(s)
	}
	return rc, err
}

func (a *assetClient) List(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	resp, err := do(ctx, a.c, func(s *session) (*pb.ListManifestsResponse, error) {
		return pb.NewAssetStoreClient(s.cc).List(ctx, &pb.ListManifestsRequest{Selector: labelsOut(selector)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]preview.ManifestInfo, len(resp.Manifests))
	for i, mi := range resp.Manifests {
		out[i] = preview.ManifestInfo{Prefix: mi.Prefix, Labels: labelsIn(mi.Labels)}
	}
	return out, nil
}

func (a *assetClient) Delete(ctx context.Context, prefix string) error {
	_, err := do(ctx, a.c, func(s *session) (*pb.DeleteManifestsResponse, error) {
		return pb.NewAssetStoreClient(s.cc).Delete(ctx, &pb.DeleteManifestsRequest{Prefix: prefix})
	})
	return err
}

type blobCollector struct{ a *assetClient }

func (b blobCollector) CollectBlobs(ctx context.Context, opts preview.BlobCollectOptions) (preview.BlobCollectStats, error) {
	resp, err := do(ctx, b.a.c, func(s *session) (*pb.CollectBlobsResponse, error) {
		return pb.NewAssetStoreClient(s.cc).CollectBlobs(ctx, &pb.CollectBlobsRequest{OlderThanNanos: int64(opts.OlderThan), DryRun: opts.DryRun})
	})
	if err != nil {
		return preview.BlobCollectStats{}, err
	}
	return preview.BlobCollectStats{Blobs: int(resp.Blobs), Referenced: int(resp.Referenced), Young: int(resp.Young), Deleted: int(resp.Deleted), DeletedBytes: resp.DeletedBytes, Temp: int(resp.Temp)}, nil
}

// Router returns the plugin's Router, with ActivityReporter when the
// plugin serves it, or Unimplemented.
func (c *Client) Router(ctx context.Context) (preview.Router, error) {
	info, err := c.need(ctx, IfaceRouter)
	if err != nil {
		return nil, err
	}
	r := &routerClient{c: c}
	if info.Serves(IfaceActivityReporter) {
		return struct {
			*routerClient
			activityReporter
		}{r, activityReporter{r}}, nil
	}
	return r, nil
}

type routerClient struct{ c *Client }

func (r *routerClient) Route(ctx context.Context, host string) (preview.Route, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.RouteResponse, error) {
		return pb.NewRouterClient(s.cc).Route(ctx, &pb.RouteRequest{Host: host})
	})
	if err != nil {
		return preview.Route{}, err
	}
	return routeIn(resp.Route), nil
}

func (r *routerClient) SetRoute(ctx context.Context, rt preview.Route) (preview.Route, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.SetRouteResponse, error) {
		return pb.NewRouterClient(s.cc).SetRoute(ctx, &pb.SetRouteRequest{Route: routeOut(rt)})
	})
	if err != nil {
		return preview.Route{}, err
	}
	return routeIn(resp.Route), nil
}

func (r *routerClient) Routes(ctx context.Context, selector preview.Labels) ([]preview.Route, error) {
	resp, err := do(ctx, r.c, func(s *session) (*pb.RoutesResponse, error) {
		return pb.NewRouterClient(s.cc).Routes(ctx, &pb.RoutesRequest{Selector: labelsOut(selector)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]preview.Route, len(resp.Routes))
	for i, rt := range resp.Routes {
		out[i] = routeIn(rt)
	}
	return out, nil
}

func (r *routerClient) DeleteRoute(ctx context.Context, host string) error {
	_, err := do(ctx, r.c, func(s *session) (*pb.DeleteRouteResponse, error) {
		return pb.NewRouterClient(s.cc).DeleteRoute(ctx, &pb.DeleteRouteRequest{Host: host})
	})
	return err
}

type activityReporter struct{ r *routerClient }

func (a activityReporter) Activity(ctx context.Context) ([]preview.Activity, error) {
	resp, err := do(ctx, a.r.c, func(s *session) (*pb.ActivityResponse, error) {
		return pb.NewRouterClient(s.cc).Activity(ctx, &pb.ActivityRequest{})
	})
	if err != nil {
		return nil, err
	}
	out := make([]preview.Activity, len(resp.Activity))
	for i, x := range resp.Activity {
		out[i] = preview.Activity{Function: x.Function, Host: x.Host, Started: x.Started, InFlight: x.InFlight, Finished: x.Finished, LastActivity: fromUnixNano(x.LastActivityUnixNano)}
	}
	return out, nil
}

// DNS returns the plugin's DNS provider, or Unimplemented.
func (c *Client) DNS(ctx context.Context) (preview.DNS, error) {
	if _, err := c.need(ctx, IfaceDNS); err != nil {
		return nil, err
	}
	return dnsClient{c}, nil
}

type dnsClient struct{ c *Client }

func (d dnsClient) Ensure(ctx context.Context, host string, labels preview.Labels) error {
	_, err := do(ctx, d.c, func(s *session) (*pb.EnsureResponse, error) {
		return pb.NewDNSClient(s.cc).Ensure(ctx, &pb.EnsureRequest{Host: host, Labels: labelsOut(labels)})
	})
	return err
}

func (d dnsClient) Hosts(ctx context.Context, selector preview.Labels) ([]string, error) {
	resp, err := do(ctx, d.c, func(s *session) (*pb.HostsResponse, error) {
		return pb.NewDNSClient(s.cc).Hosts(ctx, &pb.HostsRequest{Selector: labelsOut(selector)})
	})
	return resp.GetHosts(), err
}

func (d dnsClient) Remove(ctx context.Context, host string) error {
	_, err := do(ctx, d.c, func(s *session) (*pb.RemoveHostResponse, error) {
		return pb.NewDNSClient(s.cc).Remove(ctx, &pb.RemoveHostRequest{Host: host})
	})
	return err
}

// CDN returns the plugin's CDN purger, or Unimplemented.
func (c *Client) CDN(ctx context.Context) (preview.CDNPurger, error) {
	if _, err := c.need(ctx, IfaceCDNPurger); err != nil {
		return nil, err
	}
	return cdnClient{c}, nil
}

type cdnClient struct{ c *Client }

func (p cdnClient) Purge(ctx context.Context, req preview.PurgeRequest) error {
	_, err := do(ctx, p.c, func(s *session) (*pb.PurgeResponse, error) {
		return pb.NewCDNClient(s.cc).Purge(ctx, &pb.PurgeRequest{Hosts: req.Hosts, Urls: req.URLs})
	})
	return err
}
