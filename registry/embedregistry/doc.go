// Package embedregistry is an OCI distribution registry that runs inside the
// Glimpse daemon and keeps everything (blobs, manifests and tags) in a
// directory, so images survive a restart. It serves the push, pull, tag
// listing, catalog and delete parts of the OCI distribution specification
// (monolithic and chunked uploads, cross-repository mounts, range reads) as
// an http.Handler that the daemon mounts at /v2/ on its main listener; it
// does no authentication of its own (wrap the handler to add it). Blobs are
// stored once per registry, not per repository, and removed only by
// GarbageCollect. It is meant for one machine and modest traffic: metadata
// operations take one registry-wide lock.
//
// Layout of the directory (a private format; use the HTTP API):
//
//	blobs/sha256/<hex>                          blob content
//	repositories/<name>/_manifests/sha256/<hex> media type, newline, manifest
//	repositories/<name>/_tags/<tag>             "sha256:<hex>"
//	uploads/<id>                                uploads in progress (removed on open)
//	tmp/                                        files being written
package embedregistry
