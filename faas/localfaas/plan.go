package localfaas

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/glimpse-dev/glimpse/preview"
)

// launchPlan is everything needed to start one process of a function,
// except the port, which each start chooses anew.
type launchPlan struct {
	name    string
	path    string   // path of the executable: on the host, or inside chroot
	args    []string // argv, argv[0] as the image names it
	dir     string   // working directory: on the host, or inside chroot
	env     []string // KEY=value, without PORT
	logPath string
	// chroot is the host path of the image's rootfs when the process runs
	// sandboxed (path and dir are then inside it), else "".
	chroot  string
	sandbox *sandboxConfig
	// tree is the function's private tree (secrets.go), "" when it has no
	// secrets.
	tree string
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// plan turns a function and its extracted image into a launch plan. The
// entrypoint and working directory are resolved inside the rootfs as if it
// were the root of the file system (absolute symbolic links included); a
// sandboxed process is chrooted there, so it sees these paths as they are
// in the image. The environment is the image's, then fn.Env, then the
// variables the runtime sets, which win over both: HOST=127.0.0.1 and, at
// each start, PORT (and GLIMPSE_SECRETS_DIR for a function with secrets,
// which then runs from a private tree: see secrets.go). Nothing comes from
// the daemon's own environment; PATH is the image's, or a default when it
// has none.
func (r *Runtime) plan(fn preview.Function, img *imageInfo) (launchPlan, error) {
	cfg := img.Config
	argv := append(append([]string(nil), cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) == 0 || argv[0] == "" {
		return launchPlan{}, preview.Errorf(preview.InvalidArgument, "image %q has no entrypoint or cmd", fn.Image)
	}
	env := map[string]string{}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range fn.Env {
		env[k] = v
	}
	env["HOST"] = "127.0.0.1"
	delete(env, "PORT") // set at each start

	workdir := cfg.WorkingDir
	if workdir == "" {
		workdir = "/"
	}
	if !path.IsAbs(workdir) {
		workdir = "/" + workdir
	}
	dir, err := resolveInRoot(img.Rootfs, workdir)
	if err != nil {
		// Docker creates a missing WORKDIR; do the same, inside the tree.
		root, rerr := os.OpenRoot(img.Rootfs)
		if rerr != nil {
			return launchPlan{}, preview.WithCode(preview.Internal, rerr)
		}
		rel := strings.TrimPrefix(path.Clean(workdir), "/")
		merr := root.MkdirAll(rel, 0o755)
		if merr == nil {
			merr = root.Chmod(rel, 0o755) // whatever the umask: the sandbox user enters it
		}
		root.Close()
		if merr != nil {
			return launchPlan{}, preview.Errorf(preview.FailedPrecondition, "image %q: working directory %q: %v", fn.Image, cfg.WorkingDir, merr)
		}
		if dir, err = resolveInRoot(img.Rootfs, workdir); err != nil {
			return launchPlan{}, preview.Errorf(preview.FailedPrecondition, "image %q: working directory %q: %v", fn.Image, cfg.WorkingDir, err)
		}
	}

	exe, err := findExecutable(img.Rootfs, workdir, argv[0], env["PATH"])
	if err != nil {
		return launchPlan{}, preview.Errorf(preview.FailedPrecondition, "image %q: entrypoint %q: %v", fn.Image, argv[0], err)
	}

	// A function with secrets runs from a private tree holding them (see
	// secrets.go); others from the image's shared tree.
	rootfs, tree := img.Rootfs, ""
	if len(fn.Secrets)+len(fn.SecretNames) > 0 {
		secrets, err := r.functionSecrets(fn)
		if err != nil {
			return launchPlan{}, err
		}
		private, sdir, err := r.privateTree(fn, img, secrets)
		if err != nil {
			return launchPlan{}, err
		}
		tree = filepath.Dir(sdir)
		env[preview.EnvSecretsDir] = sdir
		if r.sandbox != nil {
			rootfs, tree = private, filepath.Dir(private)
			env[preview.EnvSecretsDir] = secretsContainerDir
		}
	}

	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	envList := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		envList = append(envList, k+"="+env[k])
	}
	if _, ok := env["PATH"]; !ok {
		envList = append(envList, "PATH="+defaultPath)
	}
	lp := launchPlan{
		name:    fn.Name,
		path:    exe,
		args:    argv,
		dir:     dir,
		env:     envList,
		logPath: r.logPath(fn.Name),
		tree:    tree,
	}
	if r.sandbox != nil {
		lp.chroot, lp.sandbox = rootfs, r.sandbox
		lp.path, lp.dir = inRoot(img.Rootfs, exe), inRoot(img.Rootfs, dir)
	}
	return lp, nil
}

// inRoot turns host, a host path inside rootfs (as resolveInRoot returns
// it), into the absolute path it has when rootfs is the root.
func inRoot(rootfs, host string) string {
	rel, err := filepath.Rel(rootfs, host)
	if err != nil {
		return "/"
	}
	return path.Join("/", filepath.ToSlash(rel))
}

// findExecutable resolves argv0 inside rootfs: a name with a slash relative
// to workdir, a bare name through the image's PATH.
func findExecutable(rootfs, workdir, argv0, pathEnv string) (string, error) {
	var candidates []string
	switch {
	case path.IsAbs(argv0):
		candidates = []string{argv0}
	case strings.Contains(argv0, "/"):
		candidates = []string{path.Join(workdir, argv0)}
	default:
		if pathEnv == "" {
			pathEnv = defaultPath
		}
		for _, d := range strings.Split(pathEnv, ":") {
			if path.IsAbs(d) {
				candidates = append(candidates, path.Join(d, argv0))
			}
		}
	}
	var firstErr error
	for _, c := range candidates {
		p, err := resolveInRoot(rootfs, c)
		if err == nil {
			var fi os.FileInfo
			if fi, err = os.Stat(p); err == nil {
				if fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
					return p, nil
				}
				err = fs.ErrPermission
			}
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fs.ErrNotExist
	}
	return "", firstErr
}

// resolveInRoot returns the host path of the absolute path p inside rootfs,
// following symbolic links as if rootfs were "/": absolute link targets
// start again at rootfs and ".." never climbs above it. The final component
// must exist.
func resolveInRoot(rootfs, p string) (string, error) {
	rest := splitPath(p)
	cur := "/"
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		host := filepath.Join(rootfs, filepath.FromSlash(next))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: errTooManyLinks}
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return filepath.Join(rootfs, filepath.FromSlash(cur)), nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }

type linkError string

func (e linkError) Error() string { return string(e) }

const errTooManyLinks = linkError("too many levels of symbolic links")
