package localfaas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
	"github.com/glimpse-dev/glimpse/preview"
)

// Secrets, the OpenFaaS way.
//
// The runtime holds two kinds. Secrets its users manage (faas-cli secret
// create, the gateway's /system/secrets, CreateSecret) live one file each
// under home/secrets, mode 0600 in a 0700 directory, named like the
// secret; a function names them in Function.SecretNames. A function's own
// values (Function.Secrets, which Glimpse supplies) live in
// home/functions/secrets/<function>.json, mode 0600, never in the state
// file (functions.json); they are removed with the function.
//
// Delivery: at each start (Apply, wake, restart of the daemon) a function
// with secrets gets a private copy of them as files /var/openfaas/secrets/
// <name>, mode 0400, owned by the sandbox user, in a directory of mode 0500.
// Sandboxed, the function is chrooted into a file tree of its own,
// home/functions/roots/<function>/<key>/rootfs: a copy of its image's
// shared tree in which every file is a hard link to the shared one (so it
// costs one directory entry per file, no data) and to which its secrets
// directory is added. Other functions, chrooted into their own trees,
// cannot reach it (they run as the same user: the chroot is the boundary).
// The tree is built once per image digest and secret contents (key) and
// deleted with the function; its world-writable directories (a /tmp) are
// its own rather than shared by the image's functions. Unsandboxed (see the
// package documentation: no isolation at all) the secrets are files in
// home/functions/roots/<function>/<key>/secrets and the function's
// environment says where: GLIMPSE_SECRETS_DIR (preview.EnvSecretsDir),
// which sandboxed functions get too, set to /var/openfaas/secrets.
//
// A change to a secret the runtime holds reaches the functions naming it at
// their next start (a wake, a restart of the daemon) or at the next Apply
// naming it, which then starts the function again even when nothing else
// changed (the openfaas client updates a secret and then re-deploys); a
// change to Function.Secrets restarts the function (Apply).

// secretsContainerDir is where functions find their secrets.
const secretsContainerDir = preview.SecretsDir

func (r *Runtime) heldSecretsDir() string { return filepath.Join(r.home, "secrets") }
func (r *Runtime) fnSecretsPath(name string) string {
	return filepath.Join(r.home, "functions", "secrets", name+".json")
}
func (r *Runtime) rootsDir(name string) string {
	return filepath.Join(r.home, "functions", "roots", name)
}

// errNoSecret is the NotFound of the calls on a stored secret.
func errNoSecret(name string) error {
	return preview.Errorf(preview.NotFound, "secret %q not found", name)
}

// CreateSecret stores a secret that functions name in SecretNames, as
// faas-cli secret create does; AlreadyExists when one of that name exists.
func (r *Runtime) CreateSecret(ctx context.Context, name string, value []byte) error {
	return r.writeSecret(ctx, name, value, applyCreate)
}

// UpdateSecret replaces a stored secret's value; NotFound when there is
// none. Functions naming it see the new value at their next start.
func (r *Runtime) UpdateSecret(ctx context.Context, name string, value []byte) error {
	return r.writeSecret(ctx, name, value, applyUpdate)
}

func (r *Runtime) writeSecret(ctx context.Context, name string, value []byte, mode applyMode) error {
	if err := preview.ValidateSecretName(name); err != nil {
		return err
	}
	ctx, end, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	unlock, err := r.lock(ctx, "secret:"+name)
	if err != nil {
		return err
	}
	defer unlock()
	p := filepath.Join(r.heldSecretsDir(), name)
	_, err = os.Stat(p)
	switch {
	case err == nil && mode == applyCreate:
		return preview.Errorf(preview.AlreadyExists, "secret %q already exists", name)
	case errors.Is(err, fs.ErrNotExist) && mode == applyUpdate:
		return errNoSecret(name)
	}
	if err := tightenHome(r.heldSecretsDir()); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: secrets directory: %w", err))
	}
	if err := atomicfile.Write(p, value, &atomicfile.Options{Perm: 0o600, SyncDir: true}); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: writing secret %s: %w", name, err))
	}
	return nil
}

// DeleteSecret removes a stored secret; NotFound when there is none.
// Functions that name it keep their copy until they stop, and fail to start
// again until it exists.
func (r *Runtime) DeleteSecret(ctx context.Context, name string) error {
	if err := preview.ValidateSecretName(name); err != nil {
		return err
	}
	ctx, end, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	unlock, err := r.lock(ctx, "secret:"+name)
	if err != nil {
		return err
	}
	defer unlock()
	err = os.Remove(filepath.Join(r.heldSecretsDir(), name))
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSecret(name)
	}
	if err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: deleting secret %s: %w", name, err))
	}
	return nil
}

// SecretNames lists the stored secrets' names, sorted; never their values.
func (r *Runtime) SecretNames(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(r.heldSecretsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: listing secrets: %w", err))
	}
	out := []string{}
	for _, de := range des {
		if de.Type().IsRegular() && preview.ValidateSecretName(de.Name()) == nil {
			out = append(out, de.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// saveFunctionSecrets records fn's own secret values (or removes the file
// when it has none). The caller holds the function's lock.
func (r *Runtime) saveFunctionSecrets(fn preview.Function) error {
	p := r.fnSecretsPath(fn.Name)
	if len(fn.Secrets) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: removing the secrets of %s: %w", fn.Name, err))
		}
		return nil
	}
	b, err := json.Marshal(fn.Secrets)
	if err != nil {
		return preview.WithCode(preview.Internal, err)
	}
	if err := tightenHome(filepath.Dir(p)); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: secrets directory: %w", err))
	}
	if err := atomicfile.Write(p, b, &atomicfile.Options{Perm: 0o600, SyncDir: true}); err != nil {
		return preview.WithCode(preview.Internal, fmt.Errorf("localfaas: saving the secrets of %s: %w", fn.Name, err))
	}
	return nil
}

// loadFunctionSecrets reads back what saveFunctionSecrets wrote; nil when
// the function has none.
func (r *Runtime) loadFunctionSecrets(name string) (map[string]string, error) {
	b, err := os.ReadFile(r.fnSecretsPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: reading the secrets of %s: %w", name, err))
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, preview.Errorf(preview.FailedPrecondition, "localfaas: the secrets file of %s is not valid", name)
	}
	return m, nil
}

// removeFunctionSecrets deletes a removed function's secret values and
// private trees. The caller holds the function's lock.
func (r *Runtime) removeFunctionSecrets(name string) {
	os.Remove(r.fnSecretsPath(name))
	if err := os.RemoveAll(r.rootsDir(name)); err != nil {
		r.log.Warn("localfaas: cannot delete a function's private tree", "function", name, "err", err)
	}
}

// functionSecrets returns every secret fn sees, by name: its own values
// and the stored secrets it names. A named secret that is not stored is
// FailedPrecondition.
func (r *Runtime) functionSecrets(fn preview.Function) (map[string][]byte, error) {
	out := make(map[string][]byte, len(fn.Secrets)+len(fn.SecretNames))
	for k, v := range fn.Secrets {
		out[k] = []byte(v)
	}
	for _, n := range fn.SecretNames {
		b, err := os.ReadFile(filepath.Join(r.heldSecretsDir(), n))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, preview.Errorf(preview.FailedPrecondition, "function %s: secret %q does not exist: create it first (faas-cli secret create %s)", fn.Name, n, n)
		}
		if err != nil {
			return nil, preview.WithCode(preview.Internal, fmt.Errorf("localfaas: reading secret %s: %w", n, err))
		}
		out[n] = b
	}
	return out, nil
}

// secretsKey names a private tree: it changes with the image and with any
// secret's name or content.
func secretsKey(digest string, secrets map[string][]byte) string {
	h := sha256.New()
	io.WriteString(h, digest+"\x00")
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(secrets[n]))
		h.Write(secrets[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// privateTree prepares the secrets of fn, whose image is img, and returns
// the tree to chroot into ("" unsandboxed) and the host directory of its
// secrets. It reuses a tree already built for the same key; otherwise it
// builds one under a temporary name and renames it, so a crash leaves no
// half tree under a key. Trees of other keys are removed by
// pruneTrees once no process uses them.
func (r *Runtime) privateTree(fn preview.Function, img *imageInfo, secrets map[string][]byte) (rootfs, secretsDir string, err error) {
	base := r.rootsDir(fn.Name)
	key := secretsKey(img.Digest, secrets)
	dir := filepath.Join(base, key)
	rootfs, secretsDir = filepath.Join(dir, "rootfs"), filepath.Join(dir, "secrets")
	if r.sandbox != nil {
		secretsDir = filepath.Join(rootfs, filepath.FromSlash(strings.TrimPrefix(secretsContainerDir, "/")))
	} else {
		rootfs = ""
	}
	if _, err := os.Stat(dir); err == nil {
		return rootfs, secretsDir, nil
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", "", preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
	}
	tmp, err := os.MkdirTemp(base, pullTempPrefix)
	if err != nil {
		return "", "", preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// The tree's top directory must be enterable by the sandbox user.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return "", "", preview.WithCode(preview.Internal, err)
	}
	var sdir string
	if r.sandbox != nil {
		if err := linkTree(img.Rootfs, filepath.Join(tmp, "rootfs")); err != nil {
			return "", "", preview.Errorf(preview.Internal, "localfaas: function %s: building its private tree: %v", fn.Name, err)
		}
		root, err := os.OpenRoot(filepath.Join(tmp, "rootfs"))
		if err != nil {
			return "", "", preview.WithCode(preview.Internal, err)
		}
		defer root.Close()
		rel := strings.TrimPrefix(secretsContainerDir, "/")
		if err := root.MkdirAll(path.Dir(rel), 0o755); err != nil {
			return "", "", preview.Errorf(preview.FailedPrecondition, "image %q: cannot make %s: %v", fn.Image, secretsContainerDir, err)
		}
		if err := root.RemoveAll(rel); err != nil {
			return "", "", preview.Errorf(preview.FailedPrecondition, "image %q: cannot make %s: %v", fn.Image, secretsContainerDir, err)
		}
		sdir = filepath.Join(tmp, "rootfs", filepath.FromSlash(rel))
	} else {
		sdir = filepath.Join(tmp, "secrets")
	}
	if err := writeSecretFiles(sdir, secrets, r.sandbox); err != nil {
		return "", "", preview.Errorf(preview.Internal, "localfaas: function %s: writing its secrets: %v", fn.Name, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return "", "", preview.WithCode(preview.Internal, fmt.Errorf("localfaas: %w", err))
	}
	return rootfs, secretsDir, nil
}

// writeSecretFiles makes dir (mode 0500) holding one file per secret, mode
// 0400, both owned by the sandbox user when there is one.
func writeSecretFiles(dir string, secrets map[string][]byte, sb *sandboxConfig) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for n, v := range secrets {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, v, 0o400); err != nil {
			return err
		}
		if sb != nil {
			if err := os.Lchown(p, int(sb.uid), int(sb.gid)); err != nil {
				return err
			}
		}
	}
	if sb != nil {
		if err := os.Lchown(dir, int(sb.uid), int(sb.gid)); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o500)
}

// pruneTrees removes the private trees of name other than keep's (the
// directory privateTree returned, or "" for none). The caller holds the
// function's lock, and no process runs from another tree any more.
func (r *Runtime) pruneTrees(name, keep string) {
	des, err := os.ReadDir(r.rootsDir(name))
	if err != nil {
		return
	}
	for _, de := range des {
		p := filepath.Join(r.rootsDir(name), de.Name())
		if keep != "" && (p == keep || strings.HasPrefix(keep, p+string(filepath.Separator))) {
			continue
		}
		os.RemoveAll(p)
	}
}

// linkTree recreates the tree src at dst (which must not exist): the same
// directories, symbolic links and owners, every other entry a hard link to
// src's (a copy where the file system refuses links).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			if err := chownLike(target, fi); err != nil {
				return err
			}
			return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid))
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
			return chownLike(target, fi)
		}
		if err := os.Link(p, target); err == nil {
			return nil
		} else if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil // a device node on another file system: left out
		}
		return copyFile(p, target, fi)
	})
}

func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := chownLike(dst, fi); err != nil {
		return err
	}
	return os.Chmod(dst, fi.Mode().Perm())
}

// sameSecrets reports whether e's process already runs with the secrets fn
// would give it now: always for a function naming no stored secret (its
// own values are compared by sameProcess), otherwise when the stored
// secrets' contents still give the tree it runs from. The caller holds
// the function's lock.
func (r *Runtime) sameSecrets(e *entry, fn preview.Function) bool {
	if len(fn.SecretNames) == 0 {
		return true
	}
	r.mu.RLock()
	tree, digest := e.tree, e.digest
	r.mu.RUnlock()
	if tree == "" {
		return e.replicas == 0 // nothing runs: the next start reads them
	}
	secrets, err := r.functionSecrets(fn)
	if err != nil {
		return false // Apply reports it
	}
	return filepath.Base(tree) == secretsKey(digest, secrets)
}

// DeliversSecrets reports true: this runtime delivers Function.Secrets and
// SecretNames (preview.SecretsRuntime).
func (r *Runtime) DeliversSecrets() bool { return true }

// removeStraySecrets deletes the secret files and private trees of
// functions the state does not hold (a crash between forgetting a function
// and deleting them). New calls it before any call can run.
func (r *Runtime) removeStraySecrets() {
	if des, err := os.ReadDir(filepath.Join(r.home, "functions", "secrets")); err == nil {
		for _, de := range des {
			if name, ok := strings.CutSuffix(de.Name(), ".json"); !ok || r.fns[name] == nil {
				os.Remove(filepath.Join(r.home, "functions", "secrets", de.Name()))
			}
		}
	}
	if des, err := os.ReadDir(filepath.Join(r.home, "functions", "roots")); err == nil {
		for _, de := range des {
			if r.fns[de.Name()] == nil {
				os.RemoveAll(filepath.Join(r.home, "functions", "roots", de.Name()))
			}
		}
	}
}
