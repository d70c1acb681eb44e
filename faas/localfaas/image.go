package localfaas

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/glimpse-dev/glimpse/preview"
	"github.com/glimpse-dev/glimpse/registry/ociregistry"
)

// imageInfo is an image extracted into the cache.
type imageInfo struct {
	Digest string    // cache key, "sha256:..." of the reference's manifest
	Rootfs string    // extracted file tree
	Config v1.Config // entrypoint, cmd, env, working directory
}

const (
	cacheConfigName = "config.json"
	cacheRootfsName = "rootfs"
	// cachePreparedName marks an entry whose tree prepareTree has made
	// ready for sandboxed processes; entries extracted by earlier versions
	// lack it and are prepared on their next use.
	cachePreparedName = "prepared"
	pullTempPrefix    = ".pull-"
	trashPrefix       = ".trash-"
)

// cacheDirName turns "sha256:<hex>" into the directory name "sha256-<hex>".
func cacheDirName(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// image returns the extracted image that ref names, pulling and extracting
// it when the cache lacks it. When digest is not empty it pins the manifest
// (a restored function keeps the image it ran, even when ref is a tag).
// The returned release function unpins the cache entry; until it is called
// prune leaves the entry alone.
func (r *Runtime) image(ctx context.Context, ref, digest string) (*imageInfo, func(), error) {
	pref, err := ociregistry.ParseReference(ref, false)
	if err != nil {
		return nil, nil, err
	}
	ropts := append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithAuthFromKeychain(r.opts.Keychain),
		remote.WithUserAgent("glimpse-localfaas"),
	}, r.opts.RemoteOptions...)

	if digest == "" {
		if d, ok := pref.(name.Digest); ok {
			digest = d.DigestStr()
		}
	} else {
		pref = pref.Context().Digest(digest)
	}
	var desc *remote.Descriptor
	if digest == "" {
		// A tag: ask the registry which manifest it names now.
		if desc, err = remote.Get(pref, ropts...); err != nil {
			return nil, nil, classifyPull(ctx, ref, err)
		}
		digest = desc.Digest.String()
	}
	if !preview.ValidDigest(digest) {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "image %q: unsupported digest %q", ref, digest)
	}

	unlock, err := r.lock(ctx, "image\x00"+digest)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()

	dir := filepath.Join(r.imagesDir, cacheDirName(digest))
	if err := upgradeCacheEntry(dir); err != nil {
		return nil, nil, preview.WithCode(preview.Internal, fmt.Errorf("image %q: %w", ref, err))
	}
	if info, release, ok := r.cached(dir, digest); ok {
		return info, release, nil
	}

	var img v1.Image
	if desc != nil {
		img, err = desc.Image()
	} else {
		img, err = remote.Image(pref, ropts...)
	}
	if err != nil {
		return nil, nil, classifyPull(ctx, ref, err)
	}
	if err := r.extract(ctx, ref, img, dir); err != nil {
		return nil, nil, err
	}
	info, release, ok := r.cached(dir, digest)
	if !ok {
		return nil, nil, preview.Errorf(preview.Internal, "image %q: extracted image vanished from %s", ref, dir)
	}
	return info, release, nil
}

// cached loads the cache entry in dir and pins it, atomically with respect
// to prune.
func (r *Runtime) cached(dir, digest string) (*imageInfo, func(), bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(dir, cacheConfigName))
	if err != nil {
		return nil, nil, false
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, nil, false
	}
	r.pins[digest]++
	released := false
	release := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if released {
			return
		}
		released = true
		if r.pins[digest]--; r.pins[digest] <= 0 {
			delete(r.pins, digest)
		}
	}
	return &imageInfo{Digest: digest, Rootfs: filepath.Join(dir, cacheRootfsName), Config: cf.Config}, release, true
}

// extract writes img's layers into a temporary directory and renames it to
// dir, so the cache never holds a half-extracted image.
func (r *Runtime) extract(ctx context.Context, ref string, img v1.Image, dir string) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return classifyPull(ctx, ref, err)
	}
	if cf.OS != "" && cf.OS != "linux" || cf.Architecture != "" && cf.Architecture != runtime.GOARCH {
		return preview.Errorf(preview.FailedPrecondition, "image %q is for %s/%s; this machine runs linux/%s", ref, cf.OS, cf.Architecture, runtime.GOARCH)
	}
	layers, err := img.Layers()
	if err != nil {
		return classifyPull(ctx, ref, err)
	}
	tmp, err := os.MkdirTemp(r.imagesDir, pullTempPrefix)
	if err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	rootfs := filepath.Join(tmp, cacheRootfsName)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	if err := os.Chmod(rootfs, 0o755); err != nil { // whatever the umask
		return preview.WithCode(preview.Internal, err)
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	defer root.Close()
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return classifyPull(ctx, ref, err)
		}
		err = extractLayer(ctx, root, rc)
		rc.Close()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var pe *preview.Error
			if errors.As(err, &pe) {
				return err
			}
			return classifyPull(ctx, ref, fmt.Errorf("layer %d: %w", i, err))
		}
	}
	if err := prepareTree(tmp); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("image %q: %w", ref, err))
	}
	b, err := json.Marshal(cf)
	if err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, cacheConfigName), b, 0o600); err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	done = true
	return nil
}

// extractLayer applies one uncompressed layer tarball to root. os.Root
// refuses every path that would leave the tree, through ".." or through a
// symbolic link; entries whose names climb out are an error. Whiteouts
// (".wh.name") delete what lower layers wrote; an opaque whiteout
// (".wh..wh..opq") empties its directory of lower layers' entries. Device
// files and FIFOs are skipped; set-id bits and ownership are dropped.
func extractLayer(ctx context.Context, root *os.Root, r io.Reader) error {
	tr := tar.NewReader(r)
	created := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := cleanEntry(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue
		}
		dir, base := path.Split(rel)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if base == ".wh..wh..opq" {
			if err := opaque(root, dir, created); err != nil {
				return err
			}
			continue
		}
		if victim, ok := strings.CutPrefix(base, ".wh."); ok {
			if err := root.RemoveAll(path.Join(dir, victim)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		if dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			perm |= 0o700 // the daemon must be able to fill and later delete it
			if fi, err := root.Lstat(rel); err == nil && !fi.IsDir() {
				if err := root.Remove(rel); err != nil {
					return err
				}
			}
			if err := root.Mkdir(rel, perm); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if hdr.Mode&0o1000 != 0 {
				perm |= fs.ModeSticky // /tmp; Mkdir does not take it
			}
			if err := root.Chmod(rel, perm); err != nil { // whatever the umask
				return err
			}
		case tar.TypeReg:
			if err := removeExisting(root, rel); err != nil {
				return err
			}
			f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := removeExisting(root, rel); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, rel); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := cleanEntry(hdr.Linkname)
			if err != nil {
				return err
			}
			if err := removeExisting(root, rel); err != nil {
				return err
			}
			if err := root.Link(target, rel); err != nil {
				return err
			}
		default:
			continue // devices, FIFOs: nothing a process needs here
		}
		created[rel] = true
	}
}

// prepareTree makes the extracted tree under the cache entry dir ready for
// a sandboxed process (host files, devices, permissions) and marks dir as
// prepared.
func prepareTree(dir string) error {
	rootfs := filepath.Join(dir, cacheRootfsName)
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	addHostFiles(root)
	addDevices(root)
	root.Close()
	if err := makeReadable(rootfs); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, cachePreparedName), nil, 0o600)
}

// upgradeCacheEntry prepares the cache entry dir if it was extracted by a
// version of the runtime that did not (see cachePreparedName). A missing
// entry is left alone. The caller holds the image's lock.
func upgradeCacheEntry(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, cachePreparedName)); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, cacheConfigName)); err != nil {
		return nil
	}
	return prepareTree(dir)
}

// hostFiles are the files a sandboxed process, chrooted into its image,
// needs from the host to resolve names (localhost, DNS) as the host does.
var hostFiles = []string{"etc/hosts", "etc/resolv.conf"}

// addHostFiles copies the host's hostFiles into root where the image has
// none (a container runtime would mount them). It is best effort: a
// missing host file or an image whose etc is not a directory is left as
// it is.
func addHostFiles(root *os.Root) {
	for _, name := range hostFiles {
		if _, err := root.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		b, err := os.ReadFile("/" + name)
		if err != nil {
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			continue
		}
		root.WriteFile(name, b, 0o644)
	}
}

// makeReadable gives everyone read access to every file and directory of
// the extracted tree at rootfs, and execute access to every directory and
// to every file that anyone could execute, so that a sandboxed process,
// which runs as an unprivileged user while the tree is the daemon's, can
// use all of its image (image contents are not secret: the registry
// serves them). Write access is not widened; set-id bits were dropped at
// extraction. Symbolic links are not followed.
func makeReadable(rootfs string) error {
	return filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var add fs.FileMode
		switch {
		case d.IsDir():
			add = 0o755
		case d.Type().IsRegular():
			add = 0o444
		default:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		if mode.IsRegular() && mode.Perm()&0o111 != 0 {
			add |= 0o111
		}
		if want := mode | add; want != mode {
			return os.Chmod(p, want&(fs.ModePerm|fs.ModeSticky))
		}
		return nil
	})
}

// cleanEntry returns the slash-separated path of a tar entry relative to the
// root ("." for the root itself), or an error when it climbs out.
func cleanEntry(n string) (string, error) {
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", preview.Errorf(preview.InvalidArgument, "layer entry %q escapes the image root", n)
	}
	return c, nil
}

func removeExisting(root *os.Root, rel string) error {
	if _, err := root.Lstat(rel); err != nil {
		return nil
	}
	return root.RemoveAll(rel)
}

// opaque removes the entries of dir that lower layers wrote.
func opaque(root *os.Root, dir string, created map[string]bool) error {
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if created[p] {
			continue
		}
		if err := root.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// classifyPull gives a pull error its code as ociregistry.Classify does,
// except that a missing image is InvalidArgument: the caller named an image
// that is not there, which must not read as "function not found".
func classifyPull(ctx context.Context, ref string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = ociregistry.Classify(ctx, fmt.Errorf("pull %q: %w", ref, err))
	if preview.IsNotFound(err) {
		return preview.Errorf(preview.InvalidArgument, "image %q not found: %w", ref, err)
	}
	return err
}
