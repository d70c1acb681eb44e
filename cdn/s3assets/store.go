package s3assets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/glimpse-dev/glimpse/preview"
)

// Cache-Control values of the objects the store writes.
const (
	BlobCacheControl     = "public, max-age=31536000, immutable"
	ManifestCacheControl = "no-cache"
	// labelsMetaKey is the user metadata key (x-amz-meta-glimpse-labels)
	// that repeats a manifest's labels for List.
	labelsMetaKey = "glimpse-labels"
)

// Options tune a Store. nil gives the defaults.
type Options struct {
	// Region is the bucket's region; empty means the AWS configuration's
	// (AWS_REGION, the profile), then "us-east-1".
	Region string
	// Prefix puts every object under Prefix + "/" in the bucket; empty
	// means the bucket's root. It is a '/'-separated relative path
	// (preview.ValidateAssetPrefix's rules); a trailing '/' is ignored.
	Prefix string
	// Endpoint is the base URL of a store other than AWS S3
	// ("http://127.0.0.1:7070"); empty means AWS.
	Endpoint string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// instead of the host name, as most self-hosted stores need.
	PathStyle bool
	// Credentials, when set, replaces the standard AWS credential chain.
	Credentials aws.CredentialsProvider
	// Profile selects a shared-configuration profile (AWS_PROFILE).
	Profile string
	// HTTPClient sends the requests; nil means a client whose connection
	// pool fits Uploads.
	HTTPClient aws.HTTPClient
	// Uploads is how many blobs Publish sends at once; 0 means 16.
	Uploads int
	// Lookups is how many listings (and manifest HEADs in List) run at
	// once; 0 means 4.
	Lookups int
	// RetryMaxAttempts is the SDK's attempts per request; 0 means its
	// default (3).
	RetryMaxAttempts int
	// Logger receives warnings (unreadable manifests); nil means
	// slog.Default().
	Logger *slog.Logger
	// Layout "paths" also stores each file of a manifest at
	// <Prefix>/sites/<prefix>/<path> (see the package doc); "" or "blobs"
	// stores blobs and manifests only.
	Layout string
}

// Store is a preview.AssetStore on an S3 bucket (see the package doc). It
// is safe for concurrent use, by many goroutines and by many processes
// sharing the bucket.
type Store struct {
	b *preview.AssetBucket
	d *driver
}

var (
	_ preview.AssetStore         = (*Store)(nil)
	_ preview.AssetBasePublisher = (*Store)(nil)
)

type driver struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "p/"
	endpoint string // for messages
	lookups  int
	uploads  int
	log      *slog.Logger
	// noConditional is set once the store answered 501 to If-None-Match.
	noConditional atomic.Bool
}

var _ preview.AssetDriver = (*driver)(nil)

// New returns a Store on bucket. It does no I/O: a missing bucket or bad
// credentials show on the first call (FailedPrecondition,
// PermissionDenied), an unreachable endpoint as Unavailable.
func New(ctx context.Context, bucket string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := validBucket(bucket); err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(opts.Prefix, "/")
	if prefix != "" {
		if err := preview.ValidateAssetPrefix(prefix); err != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "s3assets: prefix: %v", err)
		}
		prefix += "/"
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, preview.Errorf(preview.InvalidArgument, "s3assets: endpoint %q must be an http:// or https:// URL without credentials", opts.Endpoint)
		}
	}
	uploads := opts.Uploads
	if uploads <= 0 {
		uploads = 16
	}
	lookups := opts.Lookups
	if lookups <= 0 {
		lookups = 4
	}
	// A connection pool that fits the uploads and lookups (the SDK's
	// default keeps 10 idle connections per host).
	load := []func(*config.LoadOptions) error{config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = uploads + lookups
	}))}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	if opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(opts.Profile))
	}
	if opts.RetryMaxAttempts > 0 {
		load = append(load, config.WithRetryMaxAttempts(opts.RetryMaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, preview.Errorf(preview.InvalidArgument, "s3assets: AWS configuration: %v", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		// Blobs are verified on upload (by the store, against their
		// SHA-256) and are content-addressed; readers that care verify
		// the digest they asked for. So no CRC32 is computed for PUTs
		// that do not need one (the SDK's default since 2025): blob PUTs
		// carry their SHA-256 (PutBlob) and the manifest is small JSON
		// the store writes atomically.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	d := &driver{
		client:   client,
		bucket:   bucket,
		prefix:   prefix,
		endpoint: opts.Endpoint,
		lookups:  lookups,
		uploads:  uploads,
		log:      opts.Logger,
	}
	if d.endpoint == "" {
		d.endpoint = "AWS S3 (" + cfg.Region + ")"
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	var drv preview.AssetDriver = d
	switch opts.Layout {
	case "", "blobs":
	case "paths":
		drv = &pathsDriver{d}
	default:
		return nil, preview.Errorf(preview.InvalidArgument, "s3assets: layout %q: want blobs or paths", opts.Layout)
	}
	return &Store{
		b: preview.NewAssetBucket(drv, &preview.AssetBucketOptions{Name: "s3assets", Uploads: uploads}),
		d: d,
	}, nil
}

// validBucket checks S3's bucket naming rules loosely: 3 to 63 lower-case
// letters, digits, '.', '-' and '_' (the last for older stores).
func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return preview.Errorf(preview.InvalidArgument, "s3assets: bucket name %q must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return preview.Errorf(preview.InvalidArgument, "s3assets: bucket name %q: only lower-case letters, digits, '.', '-' and '_'", b)
		}
	}
	return nil
}

// Bucket returns the bucket's name.
func (s *Store) Bucket() string { return s.d.bucket }

// Prefix returns the key prefix of every object the store writes ("" or
// "p/").
func (s *Store) Prefix() string { return s.d.prefix }

// Client returns the S3 client, for callers that need the bucket itself
// (tests, collection).
func (s *Store) Client() *s3.Client { return s.d.client }

// BlobKey returns the object key of the blob with the given digest.
func (s *Store) BlobKey(digest string) string { return s.d.blobKey(digest) }

// PathKey returns the object key under which layout=paths stores the file
// at path ("/index.html") of the manifest at prefix.
func (s *Store) PathKey(prefix, path string) string { return s.d.pathKey(prefix, path) }

// ManifestKey returns the object key of the manifest at prefix.
func (s *Store) ManifestKey(prefix string) string { return s.d.manifestKey(prefix) }

// Publish stores the blobs of m that the bucket lacks and then the
// manifest; see preview.AssetBucket.Publish for the steps and the package
// doc for how the missing blobs are found and written.
func (s *Store) Publish(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error)) (preview.PublishStats, error) {
	return s.b.Publish(ctx, prefix, m, labels, open)
}

// PublishOnto is Publish that takes the blobs of the manifest at base as
// stored and lists only the others (preview.AssetBasePublisher): a
// redeploy that changed one file looks up one key.
func (s *Store) PublishOnto(ctx context.Context, prefix string, m preview.Manifest, labels preview.Labels, open func(path string) (io.ReadCloser, error), base string) (preview.PublishStats, error) {
	return s.b.PublishOnto(ctx, prefix, m, labels, open, base)
}

// Manifest returns the manifest at prefix, or NotFound.
func (s *Store) Manifest(ctx context.Context, prefix string) (preview.Manifest, error) {
	return s.b.Manifest(ctx, prefix)
}

// Open returns the blob's object body, or NotFound. The reader is not
// seekable.
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	return s.b.Open(ctx, digest)
}

// List returns the prefixes whose manifest labels match selector, sorted:
// one listing per 1,000 manifests and one HEAD per manifest.
func (s *Store) List(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	return s.b.List(ctx, selector)
}

// Delete removes the manifest at prefix; a missing prefix is success.
// Blobs stay (see the package doc).
func (s *Store) Delete(ctx context.Context, prefix string) error {
	return s.b.Delete(ctx, prefix)
}

func (d *driver) blobsPrefix() string { return d.prefix + "blobs/sha256/" }

func (d *driver) blobKey(digest string) string {
	return d.blobsPrefix() + strings.TrimPrefix(digest, "sha256:")
}

func (d *driver) manifestsPrefix() string { return d.prefix + "manifests/" }

func (d *driver) pathKey(prefix, path string) string { return d.prefix + "sites/" + prefix + path }

func (d *driver) manifestKey(prefix string) string {
	return d.manifestsPrefix() + prefix + ".json"
}

// HasBlobs lists the blob prefix where the wanted keys are (see the
// package doc), a few contiguous slices of them in parallel.
func (d *driver) HasBlobs(ctx context.Context, digests []string) (map[string]bool, error) {
	keys := make([]string, len(digests))
	for i, dg := range digests {
		keys[i] = d.blobKey(dg)
	}
	sort.Strings(keys)
	// Slices of at least 1,000 keys: a smaller slice would list the same
	// pages as its neighbour.
	parts := min(d.lookups, max(1, len(keys)/1000))
	found := make([][]string, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		lo, hi := i*len(keys)/parts, (i+1)*len(keys)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			found[i], errs[i] = d.listRange(ctx, keys[lo:hi])
		}()
	}
	wg.Wait()
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(digests))
	for _, f := range found {
		for _, k := range f {
			have["sha256:"+strings.TrimPrefix(k, d.blobsPrefix())] = true
		}
	}
	return have, nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// listRange decides every key of want (sorted) with as few listings as
// it can and returns those that exist.
func (d *driver) listRange(ctx context.Context, want []string) ([]string, error) {
	var have []string
	wanted := make(map[string]bool, len(want))
	for _, k := range want {
		wanted[k] = true
	}
	i := 0
	for i < len(want) {
		// StartAfter a string just below want[i]: its parent-like
		// truncation sorts before it, so want[i] is included.
		out, err := d.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket:     aws.String(d.bucket),
			Prefix:     aws.String(d.blobsPrefix()),
			StartAfter: aws.String(want[i][:len(want[i])-1]),
			MaxKeys:    aws.Int32(1000),
		})
		if err != nil {
			return nil, d.classify(err, "ListObjectsV2 "+d.blobsPrefix())
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); wanted[k] {
				have = append(have, k)
			}
		}
		if !aws.ToBool(out.IsTruncated) || len(out.Contents) == 0 {
			return have, nil
		}
		last := aws.ToString(out.Contents[len(out.Contents)-1].Key)
		for i < len(want) && want[i] <= last {
			i++
		}
	}
	return have, nil
}

// payloadHash makes the SDK sign the request with a payload hash we
// already know (the blob's digest) instead of reading the body to compute
// it, which it cannot do for a stream without rewinding it.
func payloadHash(hexDigest string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("GlimpsePayloadHash",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				return next.HandleInitialize(v4.SetPayloadHash(ctx, hexDigest), in)
			}), middleware.After)
	}
}

// PutBlob PUTs the blob with its checksum, conditionally (see the package
// doc).
func (d *driver) PutBlob(ctx context.Context, info preview.BlobInfo, r io.Reader) error {
	hexDigest := strings.TrimPrefix(info.Digest, "sha256:")
	raw, err := hex.DecodeString(hexDigest)
	if err != nil {
		return preview.Errorf(preview.InvalidArgument, "digest %s: %v", info.Digest, err)
	}
	ct := info.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	for attempt := 0; ; attempt++ {
		conditional := !d.noConditional.Load()
		in := &s3.PutObjectInput{
			Bucket:         aws.String(d.bucket),
			Key:            aws.String(d.blobKey(info.Digest)),
			Body:           r,
			ContentLength:  aws.Int64(info.Size),
			ContentType:    aws.String(ct),
			CacheControl:   aws.String(BlobCacheControl),
			ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(raw)),
		}
		if conditional {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := d.client.PutObject(ctx, in, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, payloadHash(hexDigest))
		})
		if err == nil {
			return nil
		}
		status, code := apiStatus(err)
		switch {
		case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
			return preview.Errorf(preview.AlreadyExists, "blob %s already stored", info.Digest)
		case conditional && (status == http.StatusNotImplemented || code == "NotImplemented"):
			// The store does not do conditional writes: write plainly
			// from now on, and once more now if the body can be rewound.
			d.noConditional.Store(true)
			if sk, ok := r.(io.Seeker); ok && attempt == 0 {
				if _, serr := sk.Seek(0, io.SeekStart); serr == nil {
					continue
				}
			}
			return preview.Errorf(preview.Unavailable, "%s does not support conditional writes; retry (they are off now)", d.endpoint)
		}
		return d.classify(err, "PutObject "+d.blobKey(info.Digest))
	}
}

// OpenBlob GETs the blob.
func (d *driver) OpenBlob(ctx context.Context, digest string) (io.ReadCloser, error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.blobKey(digest)),
	})
	if err != nil {
		return nil, d.classify(err, "GetObject "+d.blobKey(digest))
	}
	return out.Body, nil
}

// GetManifest GETs and parses the manifest object.
func (d *driver) GetManifest(ctx context.Context, prefix string) (preview.StoredManifest, error) {
	return d.getManifestKey(ctx, d.manifestKey(prefix))
}

func (d *driver) getManifestKey(ctx context.Context, key string) (preview.StoredManifest, error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return preview.StoredManifest{}, d.classify(err, "GetObject "+key)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return preview.StoredManifest{}, d.classify(err, "GetObject "+key)
	}
	var sm preview.StoredManifest
	if err := json.Unmarshal(b, &sm); err != nil {
		return preview.StoredManifest{}, preview.Errorf(preview.Internal, "corrupt manifest %s: %v", key, err)
	}
	if sm.Manifest.Files == nil {
		sm.Manifest.Files = map[string]preview.AssetFile{}
	}
	return sm, nil
}

// PutManifest PUTs the manifest object: atomic in S3.
func (d *driver) PutManifest(ctx context.Context, prefix string, m preview.StoredManifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return preview.Errorf(preview.Internal, "%v", err)
	}
	in := &s3.PutObjectInput{
		Bucket:       aws.String(d.bucket),
		Key:          aws.String(d.manifestKey(prefix)),
		Body:         bytes.NewReader(b),
		ContentType:  aws.String("application/json"),
		CacheControl: aws.String(ManifestCacheControl),
	}
	if meta := encodeLabels(m.Labels); meta != "" {
		in.Metadata = map[string]string{labelsMetaKey: meta}
	}
	if _, err := d.client.PutObject(ctx, in); err != nil {
		return d.classify(err, "PutObject "+d.manifestKey(prefix))
	}
	return nil
}

// encodeLabels returns labels as URL-escaped JSON for an ASCII metadata
// value, or "" when there are none or they would not fit S3's 2 KB of
// user metadata (List then reads the manifest itself).
func encodeLabels(l preview.Labels) string {
	if len(l) == 0 {
		return ""
	}
	b, err := json.Marshal(l)
	if err != nil {
		return ""
	}
	s := url.QueryEscape(string(b))
	if len(s) > 1800 {
		return ""
	}
	return s
}

func decodeLabels(s string) (preview.Labels, bool) {
	j, err := url.QueryUnescape(s)
	if err != nil {
		return nil, false
	}
	var l preview.Labels
	if json.Unmarshal([]byte(j), &l) != nil {
		return nil, false
	}
	return l, true
}

// ListManifests lists the manifest prefix and HEADs each manifest for its
// labels (GETs it when the metadata is missing), Lookups at a time.
func (d *driver) ListManifests(ctx context.Context, selector preview.Labels) ([]preview.ManifestInfo, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(d.bucket),
		Prefix: aws.String(d.manifestsPrefix()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, d.classify(err, "ListObjectsV2 "+d.manifestsPrefix())
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	var (
		mu   sync.Mutex
		out  = []preview.ManifestInfo{}
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, d.lookups)
	)
	for _, k := range keys {
		prefix, ok := strings.CutSuffix(strings.TrimPrefix(k, d.manifestsPrefix()), ".json")
		if !ok || preview.ValidateAssetPrefix(prefix) != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			labels, err := d.manifestLabels(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				if labels.Matches(selector) {
					out = append(out, preview.ManifestInfo{Prefix: prefix, Labels: labels})
				}
			case preview.IsNotFound(err): // deleted meanwhile
			case preview.CodeOf(err) == preview.Internal:
				d.log.Warn("s3assets: skipping unreadable manifest", "key", k, "err", err)
			default:
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

func (d *driver) manifestLabels(ctx context.Context, key string) (preview.Labels, error) {
	h, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, d.classify(err, "HeadObject "+key)
	}
	for k, v := range h.Metadata {
		if strings.EqualFold(k, labelsMetaKey) {
			if l, ok := decodeLabels(v); ok {
				return l, nil
			}
		}
	}
	sm, err := d.getManifestKey(ctx, key)
	if err != nil {
		return nil, err
	}
	return sm.Labels, nil
}

// DeleteManifest DELETEs the manifest object (S3 answers success for a
// missing key).
func (d *driver) DeleteManifest(ctx context.Context, prefix string) error {
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(d.bucket),
		Key:    aws.String(d.manifestKey(prefix)),
	})
	if err != nil {
		return d.classify(err, "DeleteObject "+d.manifestKey(prefix))
	}
	return nil
}
