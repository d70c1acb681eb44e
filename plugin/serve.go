package plugin

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// ProtocolVersion is the version of the wire protocol (glimpse.proto) this
// package speaks. A host starts only plugins that speak it; the handshake
// fails otherwise, with one line naming both versions.
const ProtocolVersion = 1

// BinaryPrefix begins the file name of every plugin: scheme foo is served
// by glimpse-plugin-foo.
const BinaryPrefix = "glimpse-plugin-"

// handshake is go-plugin's handshake: the cookie tells a plugin binary run
// by hand that it is not talking to Glimpse.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GLIMPSE_PLUGIN_COOKIE",
	MagicCookieValue: "5b0f9f1e-glimpse-provider-plugin",
}

// dispenseName is the single go-plugin "plugin" every Glimpse plugin
// serves; the provider services all hang off its gRPC server.
const dispenseName = "glimpse"

// Interface names as Describe reports them.
const (
	IfaceBuilder           = "Builder"
	IfaceRegistry          = "Registry"
	IfaceAppLister         = "AppLister"
	IfaceManifestDeleter   = "ManifestDeleter"
	IfaceFunctionRuntime   = "FunctionRuntime"
	IfaceGenerationRemover = "GenerationRemover"
	IfaceLogReader         = "LogReader"
	IfaceAssetStore        = "AssetStore"
	IfaceBlobCollector     = "BlobCollector"
	IfaceRouter            = "Router"
	IfaceActivityReporter  = "ActivityReporter"
	IfaceDNS               = "DNS"
	IfaceCDNPurger         = "CDNPurger"
)

// Providers are what a plugin serves: any subset of the provider
// interfaces. The optional interfaces (GenerationRemover and LogReader of
// the runtime, AppLister and ManifestDeleter of the registry, BlobCollector
// of the asset store, ActivityReporter of the router) are served when the
// value implements them, and the host's adapter implements them only then.
type Providers struct {
	// Name is the plugin's name; empty means the binary's name without
	// BinaryPrefix.
	Name string
	// Version is the plugin's own version ("v0.3.1"), shown by
	// `glimpse plugins`.
	Version string

	Builder  preview.Builder
	Registry preview.Registry
	Runtime  preview.FunctionRuntime
	Assets   preview.AssetStore
	Router   preview.Router
	DNS      preview.DNS
	CDN      preview.CDNPurger
}

// interfaces lists what p serves, optional interfaces included.
func (p *Providers) interfaces() []string {
	var out []string
	add := func(ok bool, name string) {
		if ok {
			out = append(out, name)
		}
	}
	add(p.Builder != nil, IfaceBuilder)
	if p.Registry != nil {
		out = append(out, IfaceRegistry)
		_, ok := p.Registry.(preview.AppLister)
		add(ok, IfaceAppLister)
		_, ok = p.Registry.(preview.ManifestDeleter)
		add(ok, IfaceManifestDeleter)
	}
	if p.Runtime != nil {
		out = append(out, IfaceFunctionRuntime)
		_, ok := p.Runtime.(preview.GenerationRemover)
		add(ok, IfaceGenerationRemover)
		_, ok = p.Runtime.(preview.LogReader)
		add(ok, IfaceLogReader)
	}
	if p.Assets != nil {
		out = append(out, IfaceAssetStore)
		_, ok := p.Assets.(preview.BlobCollector)
		add(ok, IfaceBlobCollector)
	}
	if p.Router != nil {
		out = append(out, IfaceRouter)
		_, ok := p.Router.(preview.ActivityReporter)
		add(ok, IfaceActivityReporter)
	}
	add(p.DNS != nil, IfaceDNS)
	add(p.CDN != nil, IfaceCDNPurger)
	return out
}

// Serve serves p to the Glimpse host that started this process, and is the
// whole of a plugin's main:
//
//	func main() { plugin.Serve(plugin.Providers{DNS: myDNS}) }
//
// It returns only when the host is done with the plugin (and exits the
// process when it was not started by a host, with a message saying so).
// It also ends the process when the host process disappears, even when the
// host was killed without a chance to stop its plugins. The providers must
// be safe for concurrent use: the host calls them from many goroutines.
func Serve(p Providers) {
	if p.Name == "" {
		p.Name = strings.TrimPrefix(filepath.Base(os.Args[0]), BinaryPrefix)
	}
	watchParent(os.Getppid(), time.Second/2)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{ProtocolVersion: {dispenseName: &grpcPlugin{p: &p}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.NewNullLogger(),
	})
}

// watchParent exits the process once its parent is no longer ppid (the
// host died and the plugin was handed to another process). On Linux the
// host also asks for SIGKILL on its death (see cmd_linux.go); this covers
// the other systems and the case where the thread that started the plugin
// ended.
func watchParent(ppid int, every time.Duration) {
	if ppid <= 1 {
		return
	}
	go func() {
		for range time.Tick(every) {
			if os.Getppid() != ppid {
				os.Exit(2)
			}
		}
	}()
}

// grpcPlugin is go-plugin's view of a Glimpse plugin: its server side
// registers the services of p, its client side hands back the connection.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	p *Providers
}

// session is the host's side of one running plugin.
type session struct {
	cc     *grpc.ClientConn
	broker *goplugin.GRPCBroker
	done   context.Context // ends when the plugin process exits

	filesOnce sync.Once
	filesID   uint32
	files     *filesServer
}

func (g *grpcPlugin) GRPCClient(ctx context.Context, b *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &session{cc: cc, broker: b, done: ctx}, nil
}

func (g *grpcPlugin) GRPCServer(b *goplugin.GRPCBroker, s *grpc.Server) error {
	p := g.p
	pb.RegisterInfoServer(s, &infoServer{p: p})
	if p.Builder != nil {
		pb.RegisterBuilderServer(s, &builderServer{b: p.Builder})
	}
	if p.Registry != nil {
		pb.RegisterRegistryServer(s, &registryServer{r: p.Registry})
	}
	if p.Runtime != nil {
		pb.RegisterFunctionRuntimeServer(s, &runtimeServer{rt: p.Runtime})
	}
	if p.Assets != nil {
		pb.RegisterAssetStoreServer(s, &assetServer{s: p.Assets, broker: b, conns: map[uint32]*grpc.ClientConn{}})
	}
	if p.Router != nil {
		pb.RegisterRouterServer(s, &routerServer{r: p.Router})
	}
	if p.DNS != nil {
		pb.RegisterDNSServer(s, &dnsServer{d: p.DNS})
	}
	if p.CDN != nil {
		pb.RegisterCDNServer(s, &cdnServer{c: p.CDN})
	}
	return nil
}

type infoServer struct {
	pb.UnimplementedInfoServer
	p *Providers
}

func (s *infoServer) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	return &pb.DescribeResponse{Name: s.p.Name, Version: s.p.Version, ProtocolVersion: ProtocolVersion, Interfaces: s.p.interfaces()}, nil
}

type builderServer struct {
	pb.UnimplementedBuilderServer
	b preview.Builder
}

func (s *builderServer) Build(req *pb.BuildRequest, stream pb.Builder_BuildServer) error {
	t := req.GetTarget()
	br := preview.BuildRequest{
		Target:     preview.Target{App: t.GetApp(), PR: int(t.GetPr()), Commit: t.GetCommit()},
		SourceDir:  req.SourceDir,
		Repository: req.Repository,
		Tag:        req.Tag,
		Labels:     labelsIn(req.Labels),
	}
	var mu sync.Mutex
	if req.Progress {
		br.Progress = func(line string) {
			mu.Lock()
			defer mu.Unlock()
			_ = stream.Send(&pb.BuildEvent{Event: &pb.BuildEvent_Progress{Progress: line}})
		}
	}
	res, err := s.b.Build(stream.Context(), br)
	if err != nil {
		return toStatus(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return stream.Send(&pb.BuildEvent{Event: &pb.BuildEvent_Result{Result: &pb.BuildResult{
		Image: res.Image, Digest: res.Digest, SourceHash: res.SourceHash, Reused: res.Reused,
	}}})
}

type registryServer struct {
	pb.UnimplementedRegistryServer
	r preview.Registry
}

func (s *registryServer) Repository(_ context.Context, req *pb.RepositoryRequest) (*pb.RepositoryResponse, error) {
	return &pb.RepositoryResponse{Repository: s.r.Repository(req.App)}, nil
}

func (s *registryServer) Resolve(ctx context.Context, req *pb.ResolveRequest) (*pb.ResolveResponse, error) {
	d, err := s.r.Resolve(ctx, req.Ref)
	return &pb.ResolveResponse{Digest: d}, toStatus(err)
}

func (s *registryServer) Tags(ctx context.Context, req *pb.TagsRequest) (*pb.TagsResponse, error) {
	tags, err := s.r.Tags(ctx, req.App)
	return &pb.TagsResponse{Tags: tags}, toStatus(err)
}

func (s *registryServer) DeleteTag(ctx context.Context, req *pb.DeleteTagRequest) (*pb.DeleteTagResponse, error) {
	return &pb.DeleteTagResponse{}, toStatus(s.r.DeleteTag(ctx, req.App, req.Tag))
}

func (s *registryServer) Apps(ctx context.Context, _ *pb.AppsRequest) (*pb.AppsResponse, error) {
	al, ok := s.r.(preview.AppLister)
	if !ok {
		return nil, toStatus(preview.Errorf(preview.Unimplemented, "the registry cannot list apps"))
	}
	apps, err := al.Apps(ctx)
	return &pb.AppsResponse{Apps: apps}, toStatus(err)
}

func (s *registryServer) DeleteManifest(ctx context.Context, req *pb.DeleteManifestRequest) (*pb.DeleteManifestResponse, error) {
	md, ok := s.r.(preview.ManifestDeleter)
	if !ok {
		return nil, toStatus(preview.Errorf(preview.Unimplemented, "the registry cannot delete manifests"))
	}
	return &pb.DeleteManifestResponse{}, toStatus(md.DeleteManifest(ctx, req.App, req.Digest))
}

type runtimeServer struct {
	pb.UnimplementedFunctionRuntimeServer
	rt preview.FunctionRuntime
}

func (s *runtimeServer) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	return &pb.ApplyResponse{}, toStatus(s.rt.Apply(ctx, functionIn(req.Function)))
}

func (s *runtimeServer) Get(ctx context.Context, req *pb.GetFunctionRequest) (*pb.GetFunctionResponse, error) {
	st, err := s.rt.Get(ctx, req.Name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetFunctionResponse{Status: statusOut(st)}, nil
}

func (s *runtimeServer) List(ctx context.Context, req *pb.ListFunctionsRequest) (*pb.ListFunctionsResponse, error) {
	fns, err := s.rt.List(ctx, labelsIn(req.Selector))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListFunctionsResponse{Functions: make([]*pb.FunctionStatus, len(fns))}
	for i, f := range fns {
		out.Functions[i] = statusOut(f)
	}
	return out, nil
}

func (s *runtimeServer) Scale(ctx context.Context, req *pb.ScaleRequest) (*pb.ScaleResponse, error) {
	n, err := s.rt.Scale(ctx, req.Name, int(req.Replicas))
	return &pb.ScaleResponse{Replicas: int64(n)}, toStatus(err)
}

func (s *runtimeServer) Remove(ctx context.Context, req *pb.RemoveFunctionRequest) (*pb.RemoveFunctionResponse, error) {
	return &pb.RemoveFunctionResponse{}, toStatus(s.rt.Remove(ctx, req.Name))
}

func (s *runtimeServer) RemoveOlder(ctx context.Context, req *pb.RemoveOlderRequest) (*pb.RemoveOlderResponse, error) {
	gr, ok := s.rt.(preview.GenerationRemover)
	if !ok {
		return nil, toStatus(preview.Errorf(preview.Unimplemented, "the runtime cannot remove by generation"))
	}
	removed, err := gr.RemoveOlder(ctx, req.Name, req.Below)
	return &pb.RemoveOlderResponse{Removed: removed}, toStatus(err)
}

func (s *runtimeServer) Logs(req *pb.LogsRequest, stream pb.FunctionRuntime_LogsServer) error {
	lr, ok := s.rt.(preview.LogReader)
	if !ok {
		return toStatus(preview.Errorf(preview.Unimplemented, "the runtime cannot read logs"))
	}
	opts := preview.LogOptions{Since: fromUnixNano(req.SinceUnixNano), Tail: int(req.Tail), Follow: req.Follow}
	return toStatus(lr.Logs(stream.Context(), req.Name, opts, func(l preview.LogLine) error {
		return stream.Send(&pb.LogLine{Function: l.Function, Instance: l.Instance, TimeUnixNano: unixNano(l.Time), Text: l.Text})
	}))
}

// chunkSize is the size of the chunks blob bodies travel in.
const chunkSize = 64 << 10

// sendChunks copies r to send in chunks of at most chunkSize bytes.
func sendChunks(r io.Reader, send func(*pb.Chunk) error) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := send(&pb.Chunk{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type assetServer struct {
	pb.UnimplementedAssetStoreServer
	s      preview.AssetStore
	broker *goplugin.GRPCBroker

	mu    sync.Mutex
	conns map[uint32]*grpc.ClientConn // the host's Files services, by broker id
}

// filesConn returns the connection to the host's Files service id,
// dialling it once.
func (s *assetServer) filesConn(id uint32) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc, ok := s.conns[id]; ok {
		return cc, nil
	}
	cc, err := s.broker.Dial(id)
	if err != nil {
		return nil, preview.Errorf(preview.Unavailable, "cannot reach the host's files: %v", err)
	}
	s.conns[id] = cc
	return cc, nil
}

func (s *assetServer) Publish(ctx context.Context, req *pb.PublishRequest) (*pb.PublishResponse, error) {
	open := func(path string) (io.ReadCloser, error) {
		cc, err := s.filesConn(req.FilesBrokerId)
		if err != nil {
			return nil, err
		}
		return openStream(ctx, "host", func(ctx context.Context) (chunkStream, error) {
			return pb.NewFilesClient(cc).Open(ctx, &pb.OpenFileRequest{Token: req.FilesToken, Path: path})
		})
	}
	st, err := s.s.Publish(ctx, req.Prefix, manifestIn(req.Manifest), labelsIn(req.Labels), open)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PublishResponse{Files: int64(st.Files), Uploaded: int64(st.Uploaded), UploadedBytes: st.UploadedBytes, Reused: int64(st.Reused), Unchanged: st.Unchanged}, nil
}

func (s *assetServer) Manifest(ctx context.Context, req *pb.ManifestRequest) (*pb.ManifestResponse, error) {
	m, err := s.s.Manifest(ctx, req.Prefix)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ManifestResponse{Manifest: manifestOut(m)}, nil
}

func (s *assetServer) Open(req *pb.OpenBlobRequest, stream pb.AssetStore_OpenServer) error {
	rc, err := s.s.Open(stream.Context(), req.Digest)
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	return toStatus(sendChunks(rc, stream.Send))
}

func (s *assetServer) List(ctx context.Context, req *pb.ListManifestsRequest) (*pb.ListManifestsResponse, error) {
	infos, err := s.s.List(ctx, labelsIn(req.Selector))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListManifestsResponse{Manifests: make([]*pb.ManifestInfo, len(infos))}
	for i, mi := range infos {
		out.Manifests[i] = &pb.ManifestInfo{Prefix: mi.Prefix, Labels: mi.Labels}
	}
	return out, nil
}

func (s *assetServer) Delete(ctx context.Context, req *pb.DeleteManifestsRequest) (*pb.DeleteManifestsResponse, error) {
	return &pb.DeleteManifestsResponse{}, toStatus(s.s.Delete(ctx, req.Prefix))
}

func (s *assetServer) CollectBlobs(ctx context.Context, req *pb.CollectBlobsRequest) (*pb.CollectBlobsResponse, error) {
	bc, ok := s.s.(preview.BlobCollector)
	if !ok {
		return nil, toStatus(preview.Errorf(preview.Unimplemented, "the asset store cannot collect blobs"))
	}
	st, err := bc.CollectBlobs(ctx, preview.BlobCollectOptions{OlderThan: time.Duration(req.OlderThanNanos), DryRun: req.DryRun})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CollectBlobsResponse{Blobs: int64(st.Blobs), Referenced: int64(st.Referenced), Young: int64(st.Young), Deleted: int64(st.Deleted), DeletedBytes: st.DeletedBytes, Temp: int64(st.Temp)}, nil
}

type routerServer struct {
	pb.UnimplementedRouterServer
	r preview.Router
}

func (s *routerServer) Route(ctx context.Context, req *pb.RouteRequest) (*pb.RouteResponse, error) {
	r, err := s.r.Route(ctx, req.Host)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.RouteResponse{Route: routeOut(r)}, nil
}

func (s *routerServer) SetRoute(ctx context.Context, req *pb.SetRouteRequest) (*pb.SetRouteResponse, error) {
	r, err := s.r.SetRoute(ctx, routeIn(req.Route))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SetRouteResponse{Route: routeOut(r)}, nil
}

func (s *routerServer) Routes(ctx context.Context, req *pb.RoutesRequest) (*pb.RoutesResponse, error) {
	rs, err := s.r.Routes(ctx, labelsIn(req.Selector))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.RoutesResponse{Routes: make([]*pb.Route, len(rs))}
	for i, r := range rs {
		out.Routes[i] = routeOut(r)
	}
	return out, nil
}

func (s *routerServer) DeleteRoute(ctx context.Context, req *pb.DeleteRouteRequest) (*pb.DeleteRouteResponse, error) {
	return &pb.DeleteRouteResponse{}, toStatus(s.r.DeleteRoute(ctx, req.Host))
}

func (s *routerServer) Activity(ctx context.Context, _ *pb.ActivityRequest) (*pb.ActivityResponse, error) {
	ar, ok := s.r.(preview.ActivityReporter)
	if !ok {
		return nil, toStatus(preview.Errorf(preview.Unimplemented, "the router does not count activity"))
	}
	acts, err := ar.Activity(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ActivityResponse{Activity: make([]*pb.Activity, len(acts))}
	for i, a := range acts {
		out.Activity[i] = &pb.Activity{Function: a.Function, Host: a.Host, Started: a.Started, InFlight: a.InFlight, Finished: a.Finished, LastActivityUnixNano: unixNano(a.LastActivity)}
	}
	return out, nil
}

type dnsServer struct {
	pb.UnimplementedDNSServer
	d preview.DNS
}

func (s *dnsServer) Ensure(ctx context.Context, req *pb.EnsureRequest) (*pb.EnsureResponse, error) {
	return &pb.EnsureResponse{}, toStatus(s.d.Ensure(ctx, req.Host, labelsIn(req.Labels)))
}

func (s *dnsServer) Hosts(ctx context.Context, req *pb.HostsRequest) (*pb.HostsResponse, error) {
	hosts, err := s.d.Hosts(ctx, labelsIn(req.Selector))
	return &pb.HostsResponse{Hosts: hosts}, toStatus(err)
}

func (s *dnsServer) Remove(ctx context.Context, req *pb.RemoveHostRequest) (*pb.RemoveHostResponse, error) {
	return &pb.RemoveHostResponse{}, toStatus(s.d.Remove(ctx, req.Host))
}

type cdnServer struct {
	pb.UnimplementedCDNServer
	c preview.CDNPurger
}

func (s *cdnServer) Purge(ctx context.Context, req *pb.PurgeRequest) (*pb.PurgeResponse, error) {
	return &pb.PurgeResponse{}, toStatus(s.c.Purge(ctx, preview.PurgeRequest{Hosts: req.Hosts, URLs: req.Urls}))
}
