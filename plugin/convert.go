package plugin

import (
	"time"

	pb "github.com/glimpse-dev/glimpse/plugin/proto"
	"github.com/glimpse-dev/glimpse/preview"
)

// Conversions between preview's types and the wire messages. Times travel
// as Unix nanoseconds, 0 being the zero time.

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func labelsOut(l preview.Labels) map[string]string { return l }

func labelsIn(m map[string]string) preview.Labels {
	if m == nil {
		return nil
	}
	return preview.Labels(m)
}

func functionOut(f preview.Function) *pb.Function {
	return &pb.Function{Name: f.Name, Image: f.Image, Env: f.Env, Labels: f.Labels, Annotations: f.Annotations, Resources: resourcesOut(f.Resources)}
}

// resourcesOut is nil for no resources, so a function without them is
// the same message as before the field existed.
func resourcesOut(r preview.Resources) *pb.Resources {
	if r == (preview.Resources{}) {
		return nil
	}
	return &pb.Resources{
		Requests: &pb.ResourceList{Cpu: r.Requests.CPU, Memory: r.Requests.Memory},
		Limits:   &pb.ResourceList{Cpu: r.Limits.CPU, Memory: r.Limits.Memory},
	}
}

func resourcesIn(r *pb.Resources) preview.Resources {
	return preview.Resources{
		Requests: preview.ResourceList{CPU: r.GetRequests().GetCpu(), Memory: r.GetRequests().GetMemory()},
		Limits:   preview.ResourceList{CPU: r.GetLimits().GetCpu(), Memory: r.GetLimits().GetMemory()},
	}
}

func functionIn(f *pb.Function) preview.Function {
	if f == nil {
		return preview.Function{}
	}
	return preview.Function{Name: f.Name, Image: f.Image, Env: f.Env, Labels: labelsIn(f.Labels), Annotations: f.Annotations, Resources: resourcesIn(f.Resources)}
}

func statusOut(s preview.FunctionStatus) *pb.FunctionStatus {
	return &pb.FunctionStatus{
		Function:          functionOut(s.Function),
		Replicas:          int64(s.Replicas),
		AvailableReplicas: int64(s.AvailableReplicas),
		InvocationCount:   s.InvocationCount,
		CreatedAtUnixNano: unixNano(s.CreatedAt),
		LastError:         s.LastError,
		Restarts:          int64(s.Restarts),
		StartedAtUnixNano: unixNano(s.StartedAt),
	}
}

func statusIn(s *pb.FunctionStatus) preview.FunctionStatus {
	if s == nil {
		return preview.FunctionStatus{}
	}
	return preview.FunctionStatus{
		Function:          functionIn(s.Function),
		Replicas:          int(s.Replicas),
		AvailableReplicas: int(s.AvailableReplicas),
		InvocationCount:   s.InvocationCount,
		CreatedAt:         fromUnixNano(s.CreatedAtUnixNano),
		LastError:         s.LastError,
		Restarts:          int(s.Restarts),
		StartedAt:         fromUnixNano(s.StartedAtUnixNano),
	}
}

func manifestOut(m preview.Manifest) *pb.Manifest {
	out := &pb.Manifest{Files: make(map[string]*pb.AssetFile, len(m.Files))}
	for p, f := range m.Files {
		out.Files[p] = &pb.AssetFile{Digest: f.Digest, Size: f.Size, ContentType: f.ContentType}
	}
	return out
}

func manifestIn(m *pb.Manifest) preview.Manifest {
	out := preview.Manifest{Files: make(map[string]preview.AssetFile, len(m.GetFiles()))}
	for p, f := range m.GetFiles() {
		out.Files[p] = preview.AssetFile{Digest: f.GetDigest(), Size: f.GetSize(), ContentType: f.GetContentType()}
	}
	return out
}

func routeOut(r preview.Route) *pb.Route {
	return &pb.Route{
		Host: r.Host, AssetPrefix: r.AssetPrefix, Function: r.Function, FunctionPaths: r.FunctionPaths,
		Labels: r.Labels, Generation: r.Generation, ClaimedCommit: r.ClaimedCommit, Served: r.Served,
		Deleted: r.Deleted, Version: r.Version, Failure: r.Failure,
	}
}

func routeIn(r *pb.Route) preview.Route {
	if r == nil {
		return preview.Route{}
	}
	return preview.Route{
		Host: r.Host, AssetPrefix: r.AssetPrefix, Function: r.Function, FunctionPaths: r.FunctionPaths,
		Labels: labelsIn(r.Labels), Generation: r.Generation, ClaimedCommit: r.ClaimedCommit, Served: r.Served,
		Deleted: r.Deleted, Version: r.Version, Failure: r.Failure,
	}
}
