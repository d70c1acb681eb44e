// Package s3assets is a preview.AssetStore on any S3-compatible object
// store (AWS S3, Cloudflare R2, MinIO-likes, versitygw): the portable
// preview.AssetBucket over a small S3 driver built on aws-sdk-go-v2. It
// registers the URL scheme "s3":
//
//	s3://BUCKET?region=R&prefix=P&endpoint=URL&pathStyle=true&layout=paths&uploads=N
//
// Every parameter is optional; an unknown one is an InvalidArgument error.
// region defaults to the AWS configuration's (AWS_REGION, the profile),
// then us-east-1; prefix puts everything under P/ in the bucket; endpoint
// is the store's base URL for stores other than AWS (http://127.0.0.1:7070);
// pathStyle=true addresses the bucket in the path, as most self-hosted
// stores need; layout=paths also stores every file under its own path
// (below); uploads=N (1 to 256, default 16) is how many blobs a publish
// sends at once: across a network a cold publish gains about that
// factor over sequential PUTs until the client's or the store's CPU
// bounds it (BenchmarkPublish10k with GLIMPSE_BENCH_RTT), so a store far
// away wants more. Credentials never ride in the URL: they come from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) when set,
// otherwise from the standard AWS chain (AWS_PROFILE and the shared
// configuration files, SSO, web identity, the instance's role).
//
// # Layout
//
// Blobs are objects <P>/blobs/sha256/<hex>, written once and never
// changed, with the Content-Type of the first file that named them and
// Cache-Control "public, max-age=31536000, immutable". A preview's manifest
// is <P>/manifests/<prefix>.json (the manifest and its labels, the same
// JSON as fsassets writes), with Cache-Control "no-cache" and its labels
// also in the object's metadata (x-amz-meta-glimpse-labels) so that List
// reads them with a HEAD instead of fetching the manifest. A PUT is atomic
// in S3, so readers see the old or the new manifest, never a mix, and
// preview.AssetBucket writes it only after every blob it names is stored.
//
// # Finding the missing blobs
//
// The driver lists the blob prefix with ListObjectsV2 rather than sending
// one HEAD per blob, and it lists only where it needs to: the wanted keys
// are sorted, each listing starts (StartAfter) just before the first key
// not yet decided and returns up to 1,000 keys in order, which decides
// every wanted key up to the last one returned; the next listing jumps to
// the next undecided key. So a listing is never worse than the HEAD it
// replaces (each decides at least one key), and a deploy of 10,000 files
// into a store that already holds them costs about 10,000/1,000 listings
// (a few per lookup worker) instead of 10,000 HEADs, while a first deploy
// into an empty prefix costs one listing that returns nothing. Listings run
// in parallel over contiguous slices of the sorted keys (Options.Lookups).
// Prefix-scoped listing is what every S3-compatible store implements the
// same way; batch HEAD does not exist in the S3 API.
//
// A redeploy lists less still: the Pipeline publishes onto the manifest
// its preview serves (Store.PublishOnto, preview.AssetBasePublisher), so
// only the blobs that manifest does not name are looked up. With 10,000
// files and one changed, that is one listing of one key instead of twelve
// listings of 10,000.
//
// # Writes
//
// Blobs are uploaded concurrently (Options.Uploads, default 16), each with
// its SHA-256 as x-amz-checksum-sha256 and as the signed payload hash
// (x-amz-content-sha256), so the store itself refuses content that does
// not match its digest, and with If-None-Match: * so that a blob is never
// overwritten; 412 Precondition Failed means another publish stored it
// first, which counts as present. Stores that answer 501 Not Implemented
// to conditional writes are written unconditionally from then on (blobs
// are content-addressed, so an overwrite writes the same bytes). A
// 409 ConditionalRequestConflict (a concurrent write in progress) is
// Unavailable: retry the publish. No other checksum is computed for a
// request that does not require one (RequestChecksumCalculation
// WhenRequired, where the SDK's default computes a CRC32 of every PUT
// body): blobs carry their SHA-256 and the manifest is a small JSON
// object written atomically.
//
// On a store that runs on the same machine (versitygw in the tests and
// benchmarks), what bounds a cold publish is CPU, not concurrency: a PUT
// of a 2 KB file costs the server and the client about half a millisecond
// of CPU each, so on 2 cores 16 uploads at once finish at most about
// twice as fast as sequential PUTs (BenchmarkPublish10k's x-cold-ceiling).
// Against a remote store the round trip dominates and the uploads
// overlap it.
//
// # Deleting
//
// Delete removes the manifest only; blobs stay until a collection removes
// those no manifest references (a separate step, because a concurrent
// publish may have found a blob present and be about to reference it, and
// S3 has no lock to exclude it). Store.CollectBlobs is that collection
// (glimpse gc runs it): it lists the blob prefix (ListObjectsV2, 1,000 a
// page, LastModified as each blob's age), reads every manifest, and deletes
// with DeleteObjects, 1,000 keys a request, the blobs no manifest names
// that are older than the grace period, which protects the blobs a
// publish in flight uploaded before writing its manifest (see
// preview.AssetBucket.CollectBlobs for the window the grace period does
// not close).
//
// # layout=paths
//
// With layout=paths every file of a manifest is also an object
// <P>/sites/<prefix>/<path> (<P>/sites/hello/pr-42/7-3f2c1ab/index.html),
// with the file's Content-Type and Cache-Control "no-cache", so a CDN or
// an S3 website can serve a preview straight from the bucket. The path
// objects are server-side copies of the blobs (CopyObject: no content is
// uploaded twice), made after the blobs and before the manifest; a
// republish of the same prefix copies only the paths whose blob changed
// and deletes the paths that are gone, and Delete removes them before the
// manifest. The trade-off is storage and requests: each preview stores
// its files again in full (the blobs stay deduplicated, the copies do not),
// and each new prefix (each deploy, since the Pipeline's prefixes carry
// the generation) costs one CopyObject per file. The path objects of one
// prefix change one by one; a preview is switched atomically by pointing
// at a new prefix. Prefixes must not nest in this layout (hello/pr-1 and
// hello/pr-1/x would share keys); the Pipeline's never do.
package s3assets
