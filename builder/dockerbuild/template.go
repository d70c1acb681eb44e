package dockerbuild

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/glimpse-dev/glimpse/preview"
)

// AdditionalPackageArg is the build argument that a template's
// build_options fill with their packages, as faas-cli fills it.
const AdditionalPackageArg = "ADDITIONAL_PACKAGE"

// defaultHandlerFolder is where faas-cli puts the handler inside a
// template's build context when template.yml names no handler_folder.
const defaultHandlerFolder = "function"

// templateKeys are the template.yml keys Glimpse reads (the fields of the
// LanguageTemplate of github.com/openfaas/go-sdk/stack, which faas-cli
// uses). language, fprocess and welcome_message are informative:
// faas-cli does not build with them either.
var templateKeys = []string{"language", "fprocess", "build_options", "welcome_message", "handler_folder", "mount_ssh"}

// langTemplate is a template.yml.
type langTemplate struct {
	HandlerFolder string
	BuildOptions  map[string][]string
	optionNames   []string
}

// readTemplate reads and checks template.yml in dir (a template without
// one is allowed, as faas-cli builds it with the defaults). Errors are one
// line naming the file, with code InvalidArgument.
func readTemplate(dir, name string) (*langTemplate, error) {
	t := &langTemplate{HandlerFolder: defaultHandlerFolder, BuildOptions: map[string][]string{}}
	p := filepath.Join(dir, "template.yml")
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return t, nil
	} else if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "template %s: %v", name, err)
	}
	bad := func(n *yaml.Node, format string, args ...any) error {
		return preview.Errorf(preview.InvalidArgument, "%s: line %d: %s", p, n.Line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "%s: %s", p, oneLine(err.Error()))
	}
	if len(doc.Content) == 0 {
		return t, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, bad(root, "want a map of template settings")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !slices.Contains(templateKeys, k.Value) {
			return nil, bad(k, "key %q is not one Glimpse builds with (it reads %s)", k.Value, strings.Join(templateKeys, ", "))
		}
		switch k.Value {
		case "build_options":
			if v.Kind != yaml.SequenceNode {
				return nil, bad(v, "build_options must be a list of {name, packages}")
			}
			for _, o := range v.Content {
				var opt struct {
					Name     string   `yaml:"name"`
					Packages []string `yaml:"packages"`
				}
				if o.Kind != yaml.MappingNode || o.Decode(&opt) != nil || opt.Name == "" {
					return nil, bad(o, "each build_options entry must be {name: NAME, packages: [PKG, ...]}")
				}
				if _, dup := t.BuildOptions[opt.Name]; !dup {
					t.optionNames = append(t.optionNames, opt.Name)
				}
				t.BuildOptions[opt.Name] = opt.Packages
			}
		case "mount_ssh":
			var on bool
			if v.Decode(&on) != nil {
				return nil, bad(v, "mount_ssh must be true or false")
			}
			if on {
				return nil, bad(k, "mount_ssh: true needs BuildKit's SSH forwarding, which the docker:// builder (the engine's classic builder) does not offer; build this template with faas-cli")
			}
		default:
			if v.Kind != yaml.ScalarNode {
				return nil, bad(v, "%s must be a string", k.Value)
			}
			if k.Value == "handler_folder" && v.Value != "" {
				c := path.Clean(filepath.ToSlash(v.Value))
				if path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
					return nil, bad(v, "handler_folder %q must be a directory inside the template", v.Value)
				}
				t.HandlerFolder = c
			}
		}
	}
	return t, nil
}

// packages returns the packages of the build options named, in order and
// without duplicates, or an InvalidArgument error naming the first
// unknown option and the ones the template has.
func (t *langTemplate) packages(name string, options []string) ([]string, error) {
	var out []string
	for _, o := range options {
		pk, ok := t.BuildOptions[o]
		if !ok {
			have := "none"
			if len(t.optionNames) > 0 {
				have = strings.Join(t.optionNames, ", ")
			}
			return nil, preview.Errorf(preview.InvalidArgument, "build_options %q is not in template/%s/template.yml (its build_options: %s)", o, name, have)
		}
		for _, p := range pk {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// withPackages returns args with ADDITIONAL_PACKAGE holding pk and the
// packages args already had there, sorted and without duplicates (as
// faas-cli merges them).
func withPackages(args map[string]string, pk []string) map[string]string {
	out := map[string]string{}
	for k, v := range args {
		out[k] = v
	}
	all := append(strings.Fields(args[AdditionalPackageArg]), pk...)
	sort.Strings(all)
	out[AdditionalPackageArg] = strings.Join(slices.Compact(all), " ")
	return out
}

// layered is a build context assembled from several directories, as
// faas-cli assembles build/<fn>/: entries are kept in insertion order and
// a later entry with the same path replaces an earlier one.
type layered struct {
	files []contextFile
	index map[string]int
}

func (l *layered) add(f contextFile) {
	if l.index == nil {
		l.index = map[string]int{}
	}
	if i, ok := l.index[f.rel]; ok {
		old := l.files[i]
		l.files[i] = f
		if old.mode.IsDir() && !f.mode.IsDir() {
			// A file replaces a directory: drop what was under it.
			prefix := f.rel + "/"
			l.files = slices.DeleteFunc(l.files, func(c contextFile) bool { return strings.HasPrefix(c.rel, prefix) })
			l.reindex()
		}
		return
	}
	l.index[f.rel] = len(l.files)
	l.files = append(l.files, f)
}

func (l *layered) reindex() {
	clear(l.index)
	for i, f := range l.files {
		l.index[f.rel] = i
	}
}

// addTree adds src (a directory or a file) at slash path dst, with
// entries for dst's missing parent directories taken from parents (the
// directories above src, outermost first, or nil for dst without
// parents). Top-level names in skip are left out of a directory.
func (l *layered) addTree(src, dst string, parents []string, skip ...string) error {
	if dir := path.Dir(dst); dir != "." {
		parts := strings.Split(dir, "/")
		for i := range parts {
			rel := strings.Join(parts[:i+1], "/")
			if _, ok := l.index[rel]; ok {
				continue
			}
			abs := src
			if i < len(parents) {
				abs = parents[i]
			}
			fi, err := os.Stat(abs)
			if err != nil {
				return err
			}
			l.add(contextFile{rel: rel, abs: abs, mode: fs.ModeDir | fi.Mode().Perm()})
		}
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		slash := filepath.ToSlash(rel)
		if slash != "." && !strings.Contains(slash, "/") && slices.Contains(skip, slash) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := dst
		if slash != "." {
			target = path.Join(dst, slash)
		}
		if target == "." {
			return nil
		}
		f, ok, err := entry(p, target, d)
		if err != nil || !ok {
			return err
		}
		l.add(f)
		return nil
	})
}

// assemble returns the build context of a faas-cli template build or of a
// lang: dockerfile build with copy paths, laid out as faas-cli's
// CreateBuildContext lays out build/<fn>/: the template directory, the
// handler's top-level entries (except build and template) under the
// template's handler folder (the context root for lang: dockerfile), and
// each copy path, relative to the project, at the same path under the
// handler folder. The .dockerignore of the assembled context excludes
// files with the docker CLI's rules. It also returns the build arguments,
// with ADDITIONAL_PACKAGE filled from the template's build_options.
func (b *Builder) assemble(handler string) (*buildContext, map[string]string, error) {
	var l layered
	handlerDst := "."
	args := b.buildArgs
	if b.template != "" {
		tdir := filepath.Join(b.project, "template", b.template)
		if fi, err := os.Stat(tdir); err != nil || !fi.IsDir() {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "template %s: no directory template/%s in %s (faas-cli template pull or faas-cli template store pull %s writes it)", b.template, b.template, b.project, b.template)
		}
		t, err := readTemplate(tdir, b.template)
		if err != nil {
			return nil, nil, err
		}
		if len(b.buildOptions) > 0 {
			pk, err := t.packages(b.template, b.buildOptions)
			if err != nil {
				return nil, nil, err
			}
			args = withPackages(args, pk)
		}
		if err := l.addTree(tdir, ".", nil); err != nil {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "reading template %s: %v", b.template, err)
		}
		handlerDst = t.HandlerFolder
	}
	if err := l.addTree(handler, handlerDst, nil, "build", "template"); err != nil {
		return nil, nil, preview.Errorf(preview.InvalidArgument, "reading handler %s: %v", handler, err)
	}
	for _, c := range b.copy {
		src, err := preview.ResolveInside(b.project, c, "stack.yml configuration.copy")
		if err != nil {
			return nil, nil, err
		}
		if filepath.Clean(src) == filepath.Clean(b.project) {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "copy path %q is the whole project %s; name the directories to copy", c, b.project)
		}
		rel := filepath.ToSlash(filepath.Clean(c))
		var parents []string
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			parents = append([]string{filepath.Join(b.project, filepath.FromSlash(d))}, parents...)
		}
		if handlerDst != "." {
			parents = append([]string{handler}, parents...)
		}
		if err := l.addTree(src, path.Join(handlerDst, rel), parents); err != nil {
			return nil, nil, preview.Errorf(preview.InvalidArgument, "copy path %s: %v", c, err)
		}
	}
	bc := &buildContext{dir: handler}
	pm, err := ignoreMatcher(l.abs(ignoreFile), b.dockerfile)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range l.files {
		if pm != nil && f.rel != ignoreFile && f.rel != b.dockerfile {
			if ex, err := pm.MatchesOrParentMatches(filepath.FromSlash(f.rel)); err != nil {
				return nil, nil, preview.Errorf(preview.InvalidArgument, "%s: %v", ignoreFile, err)
			} else if ex {
				continue
			}
		}
		bc.files = append(bc.files, f)
	}
	return bc, args, nil
}

// abs returns the file behind slash path rel, or "" when there is none.
func (l *layered) abs(rel string) string {
	if i, ok := l.index[rel]; ok && l.files[i].mode.IsRegular() {
		return l.files[i].abs
	}
	return ""
}

// checkTemplateOptions checks the template options of New without I/O.
func checkTemplateOptions(o *Options) error {
	if o.Template != "" && (o.Template == "." || o.Template == ".." || strings.ContainsAny(o.Template, `/\`)) {
		return preview.Errorf(preview.InvalidArgument, "template=%q: want a template name such as python3, a directory under template/", o.Template)
	}
	if (o.Template != "" || len(o.Copy) > 0) && (o.Project == "" || !filepath.IsAbs(o.Project)) {
		return preview.Errorf(preview.InvalidArgument, "template and copy need project=, the absolute directory holding template/ and the copy paths")
	}
	if len(o.BuildOptions) > 0 && o.Template == "" {
		return preview.Errorf(preview.InvalidArgument, "option=%s: build options come from a template's template.yml and need template=", o.BuildOptions[0])
	}
	return nil
}
