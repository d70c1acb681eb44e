package embedregistry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Blobs and a manifest the fuzz registry holds, so that seeds can push
// manifests that reference them (see testdata/fuzz/FuzzManifestPut).
const (
	fuzzConfig = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	fuzzLayer  = "layer"
	// fuzzManifest is pushed as base:v1 with the config's digest.
	fuzzManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"CONFIG","size":82},"layers":[]}`
)

func sha(b string) string {
	s := sha256.Sum256([]byte(b))
	return "sha256:" + hex.EncodeToString(s[:])
}

// FuzzManifestPut pushes arbitrary manifests (body, Content-Type,
// repository name and reference) and checks: no panic; the answer is 201
// or a 4xx with a distribution error body, never a 5xx; an accepted
// manifest is JSON, is stored under the digest of its bytes and read back
// unchanged with a Content-Type that is a valid header value, its tag
// points to it, and every blob and child manifest it references (read
// with exact-case keys, as other registries and clients do) is present.
// Accepted manifests are deleted again, which must succeed.
func FuzzManifestPut(f *testing.F) {
	r, err := New(f.TempDir(), &Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	for _, b := range []string{fuzzConfig, fuzzLayer} {
		p := r.blobPath(sha(b))
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	cfg := sha(fuzzConfig)
	man := strings.Replace(fuzzManifest, "CONFIG", cfg, 1)
	h := r.Handler()
	do := func(method, path, ct string, body []byte) *http.Response {
		req := httptest.NewRequest(method, "/", bytes.NewReader(body))
		req.URL.Path, req.URL.RawPath = path, ""
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Result()
	}
	if res := do(http.MethodPut, "/v2/base/manifests/v1", "", []byte(man)); res.StatusCode != http.StatusCreated {
		f.Fatalf("pushing the base manifest: %d", res.StatusCode)
	}
	baseDigest := sha(man)

	f.Fuzz(func(t *testing.T, name, ref, ct string, body []byte) {
		if strings.ContainsAny(ct, "\r\n") {
			return // not a header value a client can send
		}
		path := "/v2/" + name + "/manifests/" + ref
		res := do(http.MethodPut, path, ct, body)
		rb, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusCreated {
			if res.StatusCode < 400 || res.StatusCode > 499 {
				t.Fatalf("PUT %q (%q) %q: %d %s", path, ct, body, res.StatusCode, rb)
			}
			var e struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(rb, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code == "" {
				t.Fatalf("PUT %q: %d with error body %q", path, res.StatusCode, rb)
			}
			return
		}
		digest := sha(string(body))
		if got := res.Header.Get("Docker-Content-Digest"); got != digest {
			t.Fatalf("PUT %q: digest %s, want %s", path, got, digest)
		}
		if !json.Valid(body) {
			t.Fatalf("PUT %q accepted %q, which is not JSON", path, body)
		}
		if missing := missingRefs(r, name, body); missing != "" {
			t.Fatalf("PUT %q accepted %q, which references %s", path, body, missing)
		}
		get := do(http.MethodGet, "/v2/"+name+"/manifests/"+digest, "", nil)
		gb, _ := io.ReadAll(get.Body)
		mt := get.Header.Get("Content-Type")
		if get.StatusCode != http.StatusOK || !bytes.Equal(gb, body) || mt == "" {
			t.Fatalf("GET of pushed %q: %d %q, Content-Type %q", body, get.StatusCode, gb, mt)
		}
		for i := 0; i < len(mt); i++ {
			if c := mt[i]; c < ' ' && c != '\t' || c == 0x7f {
				t.Fatalf("PUT %q (%q) %q: stored media type %q is not a header value", path, ct, body, mt)
			}
		}
		if validTag(ref) {
			if got := do(http.MethodHead, path, "", nil).Header.Get("Docker-Content-Digest"); got != digest {
				t.Fatalf("tag %s of %s points to %s, want %s", ref, name, got, digest)
			}
		}
		if name == "base" && digest == baseDigest {
			return // keep the manifest the seeds' indexes reference
		}
		if del := do(http.MethodDelete, "/v2/"+name+"/manifests/"+digest, "", nil); del.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE of pushed %s: %d", digest, del.StatusCode)
		}
		if get := do(http.MethodGet, "/v2/"+name+"/manifests/"+digest, "", nil); get.StatusCode != http.StatusNotFound {
			t.Fatalf("GET of deleted %s: %d", digest, get.StatusCode)
		}
	})
}

// missingRefs returns a reference of the manifest that the registry does
// not hold, reading the fields with exact-case keys; "" when all are
// there.
func missingRefs(r *Registry, name string, body []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	type desc map[string]json.RawMessage
	str := func(d desc, k string) string {
		var s string
		json.Unmarshal(d[k], &s)
		return s
	}
	var cfg desc
	var layers, manifests []desc
	json.Unmarshal(top["config"], &cfg)
	json.Unmarshal(top["layers"], &layers)
	json.Unmarshal(top["manifests"], &manifests)
	blob := func(d string) bool {
		fi, err := os.Stat(filepath.Join(r.dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		return validDigest(d) && err == nil && fi.Mode().IsRegular()
	}
	if cfg != nil && !blob(str(cfg, "digest")) {
		return "config " + str(cfg, "digest")
	}
	for _, l := range layers {
		var urls []string
		json.Unmarshal(l["urls"], &urls)
		mt := str(l, "mediaType")
		if len(urls) > 0 || strings.Contains(mt, "nondistributable") || strings.Contains(mt, "foreign") {
			continue
		}
		if !blob(str(l, "digest")) {
			return "layer " + str(l, "digest")
		}
	}
	for _, m := range manifests {
		d := str(m, "digest")
		if _, err := os.Stat(r.revPath(name, d)); !validDigest(d) || err != nil {
			return "manifest " + d
		}
	}
	return ""
}
