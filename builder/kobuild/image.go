package kobuild

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// AppDir is the directory of the image that holds the binary.
const AppDir = "/ko-app"

// DefaultPath is the PATH of images kobuild assembles.
const DefaultPath = "PATH=/ko-app:/usr/local/bin:/usr/bin:/bin"

// ImageConfig describes an image that ImageFromBinary assembles.
type ImageConfig struct {
	// Name is the binary's file name in the image, AppDir/Name. Empty
	// means the base name of the binary path.
	Name string
	// Platform is "os/arch[/variant]"; empty means "linux/amd64". It must
	// match the binary.
	Platform string
	// Entrypoint; empty means [AppDir/Name].
	Entrypoint []string
	// Env is added after DefaultPath ("KEY=value").
	Env []string
	// Labels become the image config's labels.
	Labels map[string]string
}

// ImageFromBinary assembles a one-layer OCI image from an executable: no
// base image, the binary at AppDir/Name (mode 0755), an empty /tmp (mode
// 1777), every timestamp zero. The same binary and config always give the
// same digest. The whole layer is held in memory.
func ImageFromBinary(binaryPath string, cfg ImageConfig) (v1.Image, error) {
	f, err := os.Open(binaryPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = filepath.Base(binaryPath)
	}
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, preview.Errorf(preview.InvalidArgument, "binary name %q is not a file name", name)
	}
	plat, err := parsePlatform(cfg.Platform)
	if err != nil {
		return nil, err
	}
	l, err := newLayer(f, fi.Size(), name)
	if err != nil {
		return nil, err
	}
	entry := cfg.Entrypoint
	if len(entry) == 0 {
		entry = []string{AppDir + "/" + name}
	}
	cf := v1.ConfigFile{
		Architecture: plat.Architecture,
		OS:           plat.OS,
		Variant:      plat.Variant,
		Config: v1.Config{
			Entrypoint: entry,
			Env:        append([]string{DefaultPath}, cfg.Env...),
			Labels:     cfg.Labels,
			WorkingDir: "/",
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.diffID}},
		History: []v1.History{{CreatedBy: "glimpse kobuild", Comment: AppDir + "/" + name}},
	}
	rawCfg, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	cfgDigest, cfgSize, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgDigest, Size: cfgSize},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Digest: l.digest, Size: int64(len(l.gz))}},
	}
	rawMan, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&image{config: rawCfg, configDigest: cfgDigest, manifest: rawMan, layer: l})
}

// image is the partial.CompressedImageCore of ImageFromBinary.
type image struct {
	config       []byte
	configDigest v1.Hash
	manifest     []byte
	layer        *layer
}

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *image) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	switch h {
	case i.layer.digest:
		return i.layer, nil
	case i.configDigest:
		return static.NewLayer(i.config, types.OCIConfigJSON), nil
	}
	return nil, fmt.Errorf("image has no blob %s", h)
}

// layer is a gzip-compressed tar layer held in memory.
type layer struct {
	gz             []byte
	digest, diffID v1.Hash
}

func (l *layer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *layer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *layer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *layer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *layer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *layer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.gz))
}

// newLayer writes the layer tar through gzip, hashing both streams.
func newLayer(bin io.Reader, size int64, name string) (*layer, error) {
	var gzBuf bytes.Buffer
	gzHash, tarHash := sha256.New(), sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(&gzBuf, gzHash), gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, tarHash))
	epoch := time.Unix(0, 0).UTC()
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "ko-app/", Mode: 0o755, ModTime: epoch},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch},
	}
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "ko-app/" + name, Mode: 0o755, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if n, err := io.Copy(tw, bin); err != nil {
		return nil, err
	} else if n != size {
		return nil, fmt.Errorf("binary changed while reading: %d bytes, want %d", n, size)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &layer{
		gz:     gzBuf.Bytes(),
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(gzHash.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(tarHash.Sum(nil))},
	}, nil
}

// PushBinary assembles an image from an already built executable (see
// ImageFromBinary: binary at /ko-app/<base name>, entrypoint that path
// unless entrypoint is given, platform linux/amd64) and pushes it to ref
// ("host/repo:tag"), returning the manifest digest "sha256:...". Loopback
// registries are spoken to over plain HTTP; credentials come from
// ociregistry.Keychain. Pushing the same binary and labels again gives the
// same digest and uploads nothing new. Tests use it to make images.
func PushBinary(ctx context.Context, binaryPath, ref string, labels map[string]string, entrypoint []string) (string, error) {
	img, err := ImageFromBinary(binaryPath, ImageConfig{Labels: labels, Entrypoint: entrypoint})
	if err != nil {
		return "", err
	}
	return Push(ctx, img, []string{ref}, nil)
}

// PushOptions configure Push. Nil means defaults.
type PushOptions struct {
	// Insecure uses plain HTTP for every registry (loopback ones always).
	Insecure bool
	// Keychain supplies credentials; nil means ociregistry.Keychain(nil, "").
	Keychain authn.Keychain
	// Remote are extra go-containerregistry options (transport, reuse).
	Remote []remote.Option
}

// Push pushes img under every reference in refs, in order (blobs once per
// repository, then one manifest per reference), and returns its digest. A failure
// leaves the references before the failing one in place. Errors carry
// codes as ociregistry.Classify gives them. It is ociregistry.Push with
// kobuild's defaults.
func Push(ctx context.Context, img v1.Image, refs []string, opts *PushOptions) (string, error) {
	if opts == nil {
		opts = &PushOptions{}
	}
	kc := opts.Keychain
	if kc == nil {
		kc = ociregistry.Keychain(nil, "")
	}
	return ociregistry.Push(ctx, img, refs, opts.Insecure, append([]remote.Option{remote.WithAuthFromKeychain(kc)}, opts.Remote...)...)
}

// parsePlatform parses "os/arch[/variant]"; empty means linux/amd64. Only
// linux is accepted: images run in Linux containers.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		s = "linux/amd64"
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS != "linux" || p.Architecture == "" || p.OSVersion != "" {
		return v1.Platform{}, preview.Errorf(preview.InvalidArgument, "platform %q: want linux/<arch>[/<variant>], such as linux/amd64", s)
	}
	return *p, nil
}
