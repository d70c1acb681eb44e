// Command refgen writes glimpse.yaml's reference from the Go types that
// load it, so that the reference cannot drift from the loader: the key
// table of docs/glimpse-yaml.md (between its BEGIN/END GENERATED
// markers; the rest of the page is kept as written) and the JSON Schema
// docs/glimpse.schema.json (draft 2020-12). Keys, types and nesting come
// from the yaml tags (config/internal/yamlkeys), the words from the
// fields' doc comments or, for package preview's Go-centred comments,
// the notes in notes.go, the defaults from preview.Spec.Defaults where it
// sets one. It also writes the key table of docs/glimpse-serve-yaml.md
// from config.ServeKeys (the same words as glimpse serve's flag help). Run it with `go generate ./config`; its test fails when the
// committed files differ from its output or a key has no words.
//
// Writing is idempotent: a second run changes nothing.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/glimpse-dev/glimpse/internal/atomicfile"
)

func main() {
	doc := flag.String("doc", "../docs/glimpse-yaml.md", "the reference page to update")
	schema := flag.String("schema", "../docs/glimpse.schema.json", "the JSON Schema to write")
	serve := flag.String("serve", "../docs/glimpse-serve-yaml.md", "the serve config reference page to update")
	flag.Parse()
	if err := run(*doc, *schema, *serve); err != nil {
		fmt.Fprintln(os.Stderr, "refgen: "+err.Error())
		os.Exit(1)
	}
}

func run(docPath, schemaPath, servePath string) error {
	mod, err := moduleDir()
	if err != nil {
		return err
	}
	ks, err := keys(mod)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	page, err := updatePage(old, ks)
	if err != nil {
		return fmt.Errorf("%s: %v", docPath, err)
	}
	sch, err := schemaJSON(ks)
	if err != nil {
		return err
	}
	oldServe, err := os.ReadFile(servePath)
	if err != nil {
		return err
	}
	servePage, err := updateServePage(oldServe)
	if err != nil {
		return fmt.Errorf("%s: %v", servePath, err)
	}
	if err := writeIfChanged(docPath, page); err != nil {
		return err
	}
	if err := writeIfChanged(servePath, servePage); err != nil {
		return err
	}
	return writeIfChanged(schemaPath, sch)
}

// moduleDir is the directory of the go.mod above the working directory.
func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return atomicfile.Write(path, b, &atomicfile.Options{Perm: 0o644})
}
